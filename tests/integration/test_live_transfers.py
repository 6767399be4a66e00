"""Transfers on live calls (SPEC R5, T11): a real `gateway run` on SQLite, SIPp phones registered through
the admin API's secrets, SIPp callers from the trunk side. The transferor's phone sends REFER itself
(scenarios/transfer/), the gateway answers 202 and NOTIFYs the progress; the call log and the CRM are
read back through the admin API (activities from the database file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import GatewayProcess, start_gateway, stop_gateway
from tests.integration.live_kit import Admin, LiveWorld
from tests.integration.phones import Phones
from tests.integration.sipp_kit import wait_until
from tests.integration.transfer_kit import (
    colleague,
    notify_progress,
    sent_statuses,
    start_caller,
    stray_refer,
    transferor,
)
from tests.integration.trunk import Trunk

TRANSFER_RING_S = 4


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    running = start_gateway(tmp_path_factory.mktemp("live-transfers"),
                            extra_sip=f"transfer_ring_time_s = {TRANSFER_RING_S}\n")
    try:
        yield running
    finally:
        stop_gateway(running)


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Admin:
    return Admin(gateway)


@pytest.fixture
def world(gateway: GatewayProcess, admin: Admin, phones: Phones, trunk: Trunk) -> LiveWorld:
    return LiveWorld(gateway, admin, phones, trunk)


def test_r5_blind_transfer_to_an_extension_live(world: LiveWorld) -> None:
    alice, bruno = world.employee("Alice"), world.employee("Bruno")
    alice_phone = transferor(world, alice, target=bruno.extension)
    bruno_phone = colleague(world, bruno)
    number = world.number(world.queue([alice]))
    caller = start_caller(world, number, "0655000901", talk_ms=2500)
    assert caller.wait(40) == 0, caller.explain() + alice_phone.explain() + bruno_phone.explain()
    assert sent_statuses(alice_phone, "REFER") == [202]
    progress = notify_progress(alice_phone)
    assert progress[0] == ("SIP/2.0 100 Trying", "active"), progress
    assert ("SIP/2.0 180 Ringing", "active") in progress
    assert progress[-1] == ("SIP/2.0 200 OK", "terminated"), progress
    # The caller was moved onto Bruno's leg (re-INVITE with his SDP); Alice's leg released by the gateway.
    [reinvite] = caller.reinvites()
    assert "o=target" in reinvite.text
    # The caller's scenario ends on its BYE's 200; the gateway's BYE to the phone may land just after.
    alice_phone.wait_calls(ended=1)
    bruno_phone.wait_calls(ended=1)
    [alice_call] = alice_phone.calls()
    assert alice_call.hung_up_by == "gateway"
    [bruno_call] = bruno_phone.calls()
    assert bruno_call.answered and "0655000901" in (bruno_call.invite.header("From") or "")
    assert bruno_call.hung_up_by == "gateway"  # the caller's BYE reached him


def test_r5_blind_transfer_nobody_answers_the_caller_comes_back_to_the_transferor_live(world: LiveWorld) -> None:
    alice = world.employee("Alice")
    bruno = world.staff("Bruno", phone="ring")  # rings until cancelled
    alice_phone = transferor(world, alice, target=bruno.extension, hang_up=True)
    number = world.number(world.queue([alice]))
    caller = start_caller(world, number, "0655000902", talk_ms=TRANSFER_RING_S * 1000 + 4000, lifetime_s=60)
    assert caller.wait(60) == 0, caller.explain() + alice_phone.explain()
    assert bruno.phone is not None
    [rung] = bruno.phone.calls()
    assert rung.cancelled and not rung.answered
    # R5: Alice hung up after her REFER; nobody took the call, so her phone rang again and she took it back.
    alice_phone.wait_calls(ended=2)
    first, recall = alice_phone.calls()
    assert first.hung_up_by == "phone"
    assert "recall:transfer" in (recall.invite.header("Alert-Info") or "")
    assert recall.answered and recall.hung_up_by == "gateway"
    [back] = caller.reinvites()
    assert "o=transferor" in back.text


def test_r5_attended_transfer_with_replaces_live(world: LiveWorld) -> None:
    alice, bruno = world.employee("Alice"), world.employee("Bruno")
    alice_phone = transferor(world, alice, target=bruno.extension, attended=True)
    bruno_phone = colleague(world, bruno)
    number = world.number(world.queue([alice]))
    caller = start_caller(world, number, "0655000903", talk_ms=3000)
    assert caller.wait(40) == 0, caller.explain() + alice_phone.explain() + bruno_phone.explain()
    assert sent_statuses(alice_phone, "REFER") == [202]
    assert notify_progress(alice_phone)[-1] == ("SIP/2.0 200 OK", "terminated")
    # Bruno took Alice's consultation call; the gateway offered him the caller's SDP on that dialog
    # and the caller his answer: the caller now talks to Bruno, both of Alice's legs released.
    [consultation] = bruno_phone.calls()
    reinvites = [m for m in bruno_phone.messages() if not m.sent and m.method == "INVITE"][1:]
    assert [m.call_id for m in reinvites] == [consultation.call_id] and "o=caller" in reinvites[0].text
    [back] = caller.reinvites()
    assert "o=target" in back.text
    bruno_phone.wait_calls(ended=1)
    wait_until(lambda: len([m for m in alice_phone.messages() if not m.sent and m.method == "BYE"]) >= 2, 5,
               "both of Alice's legs released", alice_phone.explain)
    byes = [m for m in alice_phone.messages() if not m.sent and m.method == "BYE"]
    assert len(byes) == 2 and {m.call_id.startswith("consult///") for m in byes} == {True, False}
    assert consultation.hung_up_by == "gateway"  # the caller's BYE ended Bruno's leg


def test_r5_refer_from_a_phone_not_in_the_call_is_refused_live(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno")
    number = world.number(world.queue([alice]))
    # The caller itself tries to pass the call on: it is in the call, but no employee's phone (403).
    caller = start_caller(world, number, "0655000904", talk_ms=2500, refer_to=bruno.extension)
    assert alice.phone is not None and bruno.phone is not None
    alice.phone.wait_calls(answered=1)
    # A phone in no call names the live call's Call-ID with tags of no dialog, then no dialog at all: 481.
    stranger = stray_refer(world, caller.call_id, bruno.extension)
    assert stranger.wait(15) == 0, stranger.errors()
    answers = {(m.call_id, m.status) for m in stranger.messages() if not m.sent}  # the trace may repeat one
    assert len(answers) == 2 and {status for _, status in answers} == {481}
    assert (caller.call_id, 481) in answers
    assert caller.wait(30) == 0, caller.explain()
    assert {m.status for m in caller.messages() if not m.sent and m.cseq_method == "REFER"} == {403}
    # Nothing moved: Bruno never rang, the caller hung up on Alice.
    assert bruno.phone.calls() == [] and caller.reinvites() == []
    alice.phone.wait_calls(ended=1)
    [call] = alice.phone.calls()
    assert call.hung_up_by == "gateway"


@pytest.mark.parametrize("option", [True, False], ids=["option-on", "option-off"])
def test_t11_a_lead_created_by_the_call_follows_the_transfer_only_with_the_option_live(
    world: LiveWorld, option: bool,
) -> None:
    alice, bruno = world.employee("Alice"), world.employee("Bruno")
    transferor(world, alice, target=bruno.extension)
    colleague(world, bruno)
    number = world.number(world.queue([alice]), unknown_caller_action="auto_lead",
                          change_responsible_on_transfer=option)
    phone = "0655001101" if option else "0655001102"
    caller = start_caller(world, number, phone, talk_ms=2500)
    assert caller.wait(40) == 0, caller.explain()
    entry = world.logged(caller.call_id)
    assert entry["crm"]["action"] == "create_lead"
    [(kind, lead_id)] = world.items(entry, "created")
    # T11: the new client's lead moves to the colleague the call was passed to; without the option it stays.
    assert world.item("lead", lead_id)["responsible_id"] == (bruno.id if option else alice.id)


def test_t11_a_known_clients_items_never_change_on_transfer_live(world: LiveWorld) -> None:
    alice, bruno, carla = world.employee("Alice"), world.employee("Bruno"), world.employee("Carla", secret=False)
    caller_phone = "0655001103"
    lead = world.admin.post("/items/lead", {"title": "Known client", "phones": [caller_phone], "default_region": "FR",
                                            "responsible_id": carla.id})
    transferor(world, alice, target=bruno.extension)
    colleague(world, bruno)
    number = world.number(world.queue([alice]), change_responsible_on_transfer=True)
    caller = start_caller(world, number, caller_phone, talk_ms=2500)
    assert caller.wait(40) == 0, caller.explain()
    entry = world.logged(caller.call_id)
    assert entry["crm"]["action"] == "attach" and world.items(entry) == [("lead", lead["id"])]
    assert [t["to_employee_id"] for t in entry["routing"]["transfers"]] == [bruno.id]
    assert world.item("lead", lead["id"])["responsible_id"] == carla.id


def test_r5_t11_a_call_transferred_twice_is_one_log_entry_and_one_crm_activity_live(world: LiveWorld) -> None:
    alice, bruno, chloe = world.employee("Alice"), world.employee("Bruno"), world.employee("Chloe")
    transferor(world, alice, target=bruno.extension)
    transferor(world, bruno, target=chloe.extension, refer_after_ms=800)
    colleague(world, chloe)
    number = world.number(world.queue([alice]), unknown_caller_action="auto_lead", change_responsible_on_transfer=True)
    caller = start_caller(world, number, "0655001104", talk_ms=2500)
    assert caller.wait(40) == 0, caller.explain()
    assert len(caller.reinvites()) == 2
    page = world.admin.get("/calls?limit=200")
    assert [c["call_id"] for c in page["items"] if c["party_e164"] == "+33655001104"] == [caller.call_id]
    entry = world.logged(caller.call_id)
    chain = [(t["kind"], t["from_employee_id"], t["to_employee_id"]) for t in entry["routing"]["transfers"]]
    assert chain == [("blind", alice.id, bruno.id), ("blind", bruno.id, chloe.id)]
    legs = entry["routing"]["legs"]
    assert [leg["employee_id"] for leg in legs] == [alice.id, bruno.id, chloe.id]
    assert all(leg["seconds"] > 0.3 for leg in legs)  # each talked before passing the call on
    assert entry["answered_by_id"] == alice.id and entry["outcome"] == "answered"
    # One interaction in the CRM: one activity, completed once (the end heard when the caller hung up).
    [activity] = world.activities(entry["interaction_key"])
    assert activity["completed_at"] is not None
    details = json.loads(activity["details"])
    assert [leg["employee_id"] for leg in details["legs"]] == [alice.id, bruno.id, chloe.id]
    ended = world.rows("SELECT count(*) AS n FROM outbox_entries WHERE interaction_key = ? AND kind = 'call_ended'",
                       entry["interaction_key"])
    assert ended[0]["n"] == 1
    # R5 under T11: the last colleague who took the call holds the lead.
    [(kind, lead_id)] = world.items(entry, "created")
    assert kind == "lead" and world.item("lead", lead_id)["responsible_id"] == chloe.id
