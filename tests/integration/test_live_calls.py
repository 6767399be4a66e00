"""Live calls reach the CRM, end to end (issue 10): a real `gateway run` on SQLite, SIPp as the trunk,
SIPp phones registered with the SIP secrets set through the admin API. Each test configures its own
employees, queue group and number, places real calls, then reads the CRM items and the call log back
through the admin API (activities, which the API does not show, from the database file).

One rule per test (SPEC section 1 and R1/R6/R7); queue strategies and call-level cases are in
test_live_queues.py.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import GatewayProcess
from tests.integration.live_kit import SHORT_RING_S, Admin, LiveWorld, module_gateway, sip_secret, wait_for
from tests.integration.phones import Phones, start_phone
from tests.integration.trunk import Trunk, TrunkCall


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from module_gateway(tmp_path_factory, "live-calls")


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Admin:
    return Admin(gateway)


@pytest.fixture
def world(gateway: GatewayProcess, admin: Admin, phones: Phones, trunk: Trunk) -> LiveWorld:
    return LiveWorld(gateway, admin, phones, trunk)


@pytest.fixture
def crm_settings(admin: Admin) -> Iterator[dict[str, Any]]:
    """The CRM-wide settings, put back as they were after the test (they are shared by every test)."""
    before = admin.get("/crm-settings")
    yield dict(before)
    admin.put("/crm-settings", before)


def answered_once(run: Any) -> str:
    assert run.successes == 1 and run.statuses == [200], run.explain()
    return str(run.call_ids[0])


def test_t4a_new_caller_gets_a_lead_when_the_call_starts(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno")
    number = world.number(world.queue([alice, bruno]), unknown_caller_action="auto_lead")
    ringing = world.start_call(number, "0655000101", talk_ms=2500)
    assert alice.phone is not None
    alice.phone.wait_calls(answered=1)
    call_id = ringing.result().call_ids[0]
    # T4a: the lead exists while the call is still up (created when it started, not when it ends).
    during = world.log_entry(call_id)
    assert during is not None and during["ended_at"] is None
    [lead] = wait_for("the lead while the call is up", lambda: world.items_with_phone("lead", "+33655000101"))
    assert world.log_entry(call_id)["ended_at"] is None  # type: ignore[index]
    answered_once(ringing.wait())
    entry = world.logged(call_id)
    assert entry["crm"]["action"] == "create_lead" and "T4a" in entry["crm"]["rule_ids"]
    assert world.items(entry) == [("lead", lead["id"])] and entry["items"][0]["how"] == "created"
    assert lead["responsible_id"] == alice.id and lead["status"] == "active"
    assert entry["answered_by_id"] == alice.id and entry["outcome"] == "answered"
    [activity] = world.activities(entry["interaction_key"])
    assert activity["kind"] == "call" and activity["direction"] == "inbound" and activity["completed_at"]
    details = json.loads(activity["details"])
    assert (details["outcome"], details["answered_by"]) == ("answered", alice.id) and details["duration_s"] > 1


def test_t4b_offer_in_card_creates_nothing_and_records_the_offer(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]), unknown_caller_action="offer_in_card")
    entry = world.logged(answered_once(world.call(number, "0655000201")))
    assert entry["crm"]["action"] == "offer_in_card" and "T4b" in entry["crm"]["rule_ids"]
    decision = world.admin.get(f"/decisions/{entry['interaction_key']}")
    assert decision["plan"]["action"] == "offer_in_card" and decision["plan"]["responsible_id"] == alice.id
    assert entry["items"] == [] and world.activities(entry["interaction_key"]) == []
    assert world.items_with_phone("lead", "+33655000201") == []
    assert world.items_with_phone("contact", "+33655000201") == []
    assert entry["answered_by_id"] == alice.id


def test_t5_a_number_creating_items_for_outgoing_calls_only_records_an_incoming_one(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]), create_for="outgoing")
    entry = world.logged(answered_once(world.call(number, "0655000301")))
    assert entry["crm"]["action"] == "record_only" and entry["crm"]["rule_ids"] == ["T5"]
    assert entry["items"] == [] and world.activities(entry["interaction_key"]) == []
    assert world.items_with_phone("lead", "+33655000301") == []
    assert entry["outcome"] == "answered" and entry["party_e164"] == "+33655000301"


def test_t6_the_lead_carries_the_numbers_custom_source(world: LiveWorld) -> None:
    fair = world.admin.post("/sources", {"code": f"FAIR{world.employee('x', secret=False).id}", "name": "Trade fair"})
    assert fair["standard"] is False
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]), source_id=fair["id"])
    entry = world.logged(answered_once(world.call(number, "0655000401")))
    assert "T6" in entry["crm"]["rule_ids"]
    [(kind, lead_id)] = world.items(entry, "created")
    assert kind == "lead" and world.item("lead", lead_id)["source_id"] == fair["id"]


@pytest.mark.parametrize("route_to_responsible", [True, False], ids=["option-on", "option-off"])
def test_t7_a_known_callers_call_is_attached_and_rings_their_responsible_only_with_the_option(
    world: LiveWorld, route_to_responsible: bool,
) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno")  # Bruno: the client's responsible, not in the queue
    caller = "0655000501" if route_to_responsible else "0655000502"
    lead = world.admin.post("/items/lead", {"title": "Known client", "phones": [caller], "default_region": "FR",
                                            "responsible_id": bruno.id})
    number = world.number(world.queue([alice]), route_known_to_responsible=route_to_responsible)
    entry = world.logged(answered_once(world.call(number, caller)))
    assert entry["crm"]["action"] == "attach" and "T7" in entry["crm"]["rule_ids"]
    assert world.items(entry) == [("lead", lead["id"])] and entry["items"][0]["how"] == "attached"
    assert [item["id"] for item in world.items_with_phone("lead", "+33" + caller[1:])] == [lead["id"]]
    [activity] = world.activities(entry["interaction_key"])
    assert activity["completed_at"] is not None
    assert alice.phone is not None and bruno.phone is not None
    if route_to_responsible:
        assert entry["answered_by_id"] == bruno.id and entry["offered_ids"] == [bruno.id]
        assert "T7" in entry["routing"]["rule_ids"]
        assert bruno.phone.calls_answered() == 1 and alice.phone.calls_offered() == 0
    else:
        assert entry["answered_by_id"] == alice.id and entry["offered_ids"] == [alice.id]
        assert "T7" not in entry["routing"]["rule_ids"]
        assert alice.phone.calls_answered() == 1 and bruno.phone.calls_offered() == 0


def test_t8_a_caller_on_the_exception_list_is_logged_and_rung_but_recorded_nowhere(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    listed = world.admin.post("/exceptions", {"kind": "phone", "value": "06 55 00 08 01", "default_region": "FR"})
    number = world.number(world.queue([alice]))
    try:
        entry = world.logged(answered_once(world.call(number, "0655000801")))
    finally:
        world.admin.expect(204, "DELETE", f"/exceptions/{listed['id']}")
    assert entry["crm"]["action"] == "record_only" and entry["crm"]["rule_ids"] == ["T8"]
    assert entry["answered_by_id"] == alice.id and "R1" in entry["routing"]["rule_ids"]  # T8 never changes routing
    assert entry["items"] == [] and world.activities(entry["interaction_key"]) == []
    assert world.items_with_phone("lead", "+33655000801") == []


def test_t9_a_call_from_an_employees_own_number_is_logged_never_recorded_in_the_crm(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    world.employee("Carla", mobiles=("06 55 00 09 01",), secret=False)
    number = world.number(world.queue([alice]))
    entry = world.logged(answered_once(world.call(number, "0655000901")))
    assert entry["crm"]["action"] == "nothing" and entry["crm"]["rule_ids"] == ["T9"]
    assert entry["party_e164"] == "+33655000901" and entry["answered_by_id"] == alice.id
    assert entry["items"] == [] and world.activities(entry["interaction_key"]) == []
    assert world.items_with_phone("lead", "+33655000901") == []


def test_t10_the_leads_responsible_is_position_one_whoever_was_skipped_or_answered(world: LiveWorld) -> None:
    alice = world.staff("Alice", phone=None)  # position 1 has no phone: skipped (R3), still responsible (T10)
    bruno = world.staff("Bruno")
    number = world.number(world.queue([alice, bruno]))
    entry = world.logged(answered_once(world.call(number, "0655001001")))
    assert entry["answered_by_id"] == bruno.id and entry["offered_ids"] == [bruno.id]
    assert "R3.no_phone" in entry["routing"]["rule_ids"] and "T10" in entry["crm"]["rule_ids"]
    [(kind, lead_id)] = world.items(entry, "created")
    assert kind == "lead" and world.item("lead", lead_id)["responsible_id"] == alice.id


def test_t12_simple_mode_creates_a_deal_in_the_selected_pipeline_with_a_contact(
    world: LiveWorld, crm_settings: dict[str, Any],
) -> None:
    pipeline = world.admin.post("/pipelines", {"name": f"Inbound calls {world.employee('x', secret=False).id}"})
    world.admin.put("/crm-settings", {**crm_settings, "mode": "simple", "deal_pipeline_id": pipeline["id"],
                                      "deal_creation_mode": "contact"})
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]))
    entry = world.logged(answered_once(world.call(number, "0655001201")))
    assert entry["crm"]["action"] == "create_deal" and "T12" in entry["crm"]["rule_ids"]
    created = dict(world.items(entry, "created"))
    assert set(created) == {"deal", "contact"}, entry["items"]
    deal, contact = world.item("deal", created["deal"]), world.item("contact", created["contact"])
    assert deal["pipeline_id"] == pipeline["id"] and deal["contact_id"] == contact["id"]
    assert deal["responsible_id"] == contact["responsible_id"] == alice.id
    assert world.items_with_phone("lead", "+33655001201") == []
    assert [c["id"] for c in world.items_with_phone("contact", "+33655001201")] == [contact["id"]]


def test_m11_repeat_sales_a_returning_client_gets_a_repeat_lead_then_calls_attach_to_it(
    world: LiveWorld, crm_settings: dict[str, Any],
) -> None:
    world.admin.put("/crm-settings", {**crm_settings, "mode": "classic", "repeat_sales": True})
    alice, bruno = world.staff("Alice"), world.employee("Bruno", secret=False)
    client = world.admin.post("/items/contact", {"name": "Returning client", "phones": ["0655001101"],
                                                  "default_region": "FR", "responsible_id": bruno.id})
    number = world.number(world.queue([alice]))
    run = world.trunk.call(world.gateway, TrunkCall(number.dial, "0655001101"), TrunkCall(number.dial, "0655001101"))
    assert run.successes == 2, run.explain()
    first, second = (world.logged(call_id) for call_id in run.call_ids)
    assert first["crm"]["action"] == "create_lead" and "M11" in first["crm"]["rule_ids"]
    [(kind, lead_id)] = world.items(first, "created")
    assert kind == "lead" and ("contact", client["id"]) in world.items(first, "attached")
    assert world.item("lead", lead_id)["responsible_id"] == bruno.id  # the client's owner, not the queue
    # The repeat lead is a request in progress now: the next call attaches to it, no second lead.
    assert second["crm"]["action"] == "attach" and world.items(second, "created") == []
    assert ("lead", lead_id) in world.items(second, "attached")
    assert len(world.items_with_phone("lead", "+33655001101")) == 1


def test_r1_a_known_callers_responsible_rings_alone_then_the_queue_group_and_unknown_numbers_get_404(
    world: LiveWorld,
) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno", phone="ring")
    world.admin.post("/items/lead", {"title": "Bruno's client", "phones": ["0655000151"], "default_region": "FR",
                                     "responsible_id": bruno.id})
    number = world.number(world.queue([alice]), route_known_to_responsible=True,
                          responsible_ring_time_s=SHORT_RING_S)
    entry = world.logged(answered_once(world.call(number, "0655000151", time_limit_s=20)))
    assert entry["offered_ids"] == [bruno.id, alice.id] and entry["answered_by_id"] == alice.id
    rules = entry["routing"]["rule_ids"]
    assert rules.index("R1") < rules.index("T7") < rules.index("R2.in_order"), rules
    assert bruno.phone is not None and bruno.phone.calls_cancelled() == 1
    unknown = world.trunk.call(world.gateway, TrunkCall("0184899999", "0655000152"), expect=404)
    assert unknown.statuses == [404], unknown.explain()
    rejected = world.logged(unknown.call_ids[0], crm=False)
    assert (rejected["outcome"], rejected["status"], rejected["number_id"]) == ("rejected", 404, None)
    assert "R1.unknown_number" in rejected["routing"]["rule_ids"] and rejected["crm"] is None


def test_r1_a_known_callers_responsible_without_a_phone_is_skipped_for_the_queue_group(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno", phone=None)
    lead = world.admin.post("/items/lead", {"title": "Bruno's client", "phones": ["0655000181"],
                                            "default_region": "FR", "responsible_id": bruno.id})
    number = world.number(world.queue([alice]), route_known_to_responsible=True)
    entry = world.logged(answered_once(world.call(number, "0655000181")))
    assert entry["offered_ids"] == [alice.id] and entry["answered_by_id"] == alice.id
    assert {"T7", "R3.no_phone", "R2.in_order"} <= set(entry["routing"]["rule_ids"])
    assert entry["crm"]["action"] == "attach" and world.items(entry) == [("lead", lead["id"])]


def test_r6_callers_without_a_usable_number_are_logged_never_a_lead(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]))
    run = world.trunk.call(world.gateway,
                           TrunkCall(number.dial, None),  # anonymous
                           TrunkCall(number.dial, None, asserted="+33655000602", privacy="id"),  # withheld
                           TrunkCall(number.dial, None, asserted="+33655000603"),  # a trusted trunk's PAI
                           TrunkCall(number.dial, "reception.desk"),  # unparseable
                           talk_ms=100)
    assert run.successes == 4, run.explain()
    anonymous, withheld, asserted, unparseable = (world.logged(call_id) for call_id in run.call_ids)
    assert "reception.desk" in unparseable["party_raw"]
    for entry in (anonymous, withheld, unparseable):
        assert entry["crm"]["action"] == "record_only" and entry["crm"]["rule_ids"] == ["R6"], entry
        assert entry["party_e164"] is None and entry["outcome"] == "answered"
        assert entry["items"] == [] and world.activities(entry["interaction_key"]) == []
    assert "R6" in json.dumps(anonymous["explanation"])
    assert world.items_with_phone("lead", "+33655000602") == []
    assert asserted["party_e164"] == "+33655000603" and asserted["crm"]["action"] == "create_lead"


def test_r7_the_call_log_holds_the_call_its_decisions_with_rule_ids_and_its_items(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]))
    call_id = answered_once(world.call(number, "0655000701", talk_ms=600))
    entry = world.logged(call_id)
    assert (entry["call_id"], entry["direction"], entry["number"], entry["number_id"]) == (
        call_id, "inbound", number.e164, number.id)
    assert "0655000701" in entry["party_raw"] and entry["party_e164"] == "+33655000701"
    assert entry["started_at"] <= entry["answered_at"] <= entry["ended_at"]
    assert entry["duration_s"] > 0.3 and (entry["outcome"], entry["status"]) == ("answered", 200)
    assert entry["answered_by_id"] == alice.id and entry["offered_ids"] == [alice.id]
    assert {"R1", "R2", "R2.in_order"} <= set(entry["routing"]["rule_ids"])
    assert {"T4a", "T6", "T10"} <= set(entry["crm"]["rule_ids"]) and entry["crm"]["responsible_id"] == alice.id
    [(kind, _)] = world.items(entry, "created")
    assert kind == "lead"
    lines = "\n".join(entry["explanation"])
    assert "R1:" in lines and "T4a" in lines, lines
    started = urllib.parse.quote(entry["started_at"])
    for query in (f"number={urllib.parse.quote(number.e164)}", f"number={number.dial}", "party=0655000701",
                  "party=%2B33655000701", f"since={started}&party=0655000701", f"until={started}&number={number.dial}"):
        page = world.admin.get(f"/calls?{query}")
        assert [item["call_id"] for item in page["items"]] == [call_id], query
    assert world.admin.get(f"/calls?party=0655000701&until={urllib.parse.quote('2000-01-01T00:00:00Z')}")["total"] == 0


def test_r1_the_number_is_reached_in_e164_with_or_without_plus_and_in_national_form(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]))
    forms = [number.e164, number.e164[1:], number.dial]
    run = world.trunk.call(world.gateway, *(TrunkCall(form, f"065500016{i}") for i, form in enumerate(forms)),
                           talk_ms=100)
    assert run.successes == 3, run.explain()
    for call_id in run.call_ids:
        entry = world.logged(call_id)
        assert (entry["number_id"], entry["number"], entry["answered_by_id"]) == (number.id, number.e164, alice.id)


def test_admin_api_changes_reach_the_next_call_and_phones_register_with_the_secret_set_there(
    world: LiveWorld,
) -> None:
    alice, bruno = world.employee("Alice", secret=False), world.staff("Bruno")
    with pytest.raises(AssertionError, match="did not register"):
        start_phone(world.gateway, alice.extension, sip_secret(alice.extension), registered_within_s=3,
                    directory=world.phones.directory)
    world.admin.patch(f"/employees/{alice.id}", {"sip_secret": sip_secret(alice.extension)})
    world.phone(alice)
    queue = world.queue([alice])
    number = world.number(queue)
    first = world.logged(answered_once(world.call(number, "0655000171")))
    world.admin.patch(f"/queue-groups/{queue['id']}", {"member_ids": [bruno.id]})
    second = world.logged(answered_once(world.call(number, "0655000172")))
    assert (first["answered_by_id"], second["answered_by_id"]) == (alice.id, bruno.id)
    assert world.admin.get(f"/employees/{alice.id}")["has_sip_secret"] is True
