"""Transfers on live calls (SPEC R5, T11): a real `gateway run` on SQLite, SIPp phones registered through
the admin API's secrets, SIPp callers from the trunk side. The transferor's phone sends REFER itself
(scenarios/transfer/), the gateway answers 202 and NOTIFYs the progress; the call log and the CRM are
read back through the admin API (activities from the database file).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import GatewayProcess, start_gateway, stop_gateway
from tests.integration.live_kit import Admin, LiveWorld
from tests.integration.phones import Phones
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
    [call] = alice.phone.calls()
    assert call.hung_up_by == "gateway"
