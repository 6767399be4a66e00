"""Queue groups on live calls, end to end (SPEC R2, R3, C2): a real `gateway run` on SQLite, SIPp trunk
calls, SIPp phones registered with the secrets set through the admin API. Which phone got each call is
read from the phones' own SIP traces and from the call log (`offered_ids`, `answered_by_id`).

Ring times are the admin API's minimum (5 s) where a test waits on a no-answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import GatewayProcess
from tests.integration.live_kit import Admin, LiveWorld, module_gateway, wait_for
from tests.integration.phones import Phones
from tests.integration.trunk import Trunk, TrunkCall, TrunkRun


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from module_gateway(tmp_path_factory, "live-queues")


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Admin:
    return Admin(gateway)


@pytest.fixture
def world(gateway: GatewayProcess, admin: Admin, phones: Phones, trunk: Trunk) -> LiveWorld:
    return LiveWorld(gateway, admin, phones, trunk)


def answered(run: TrunkRun, calls: int = 1) -> list[str]:
    assert run.successes == calls and run.statuses == [200] * calls, run.explain()
    return run.call_ids


def test_r2_in_order_rings_position_one_first_then_the_next_member(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice", phone="ring"), world.staff("Bruno")
    number = world.number(world.queue([alice, bruno], "in_order"))
    [call_id] = answered(world.call(number, "0655002001", time_limit_s=20))
    entry = world.logged(call_id)
    assert entry["offered_ids"] == [alice.id, bruno.id] and entry["answered_by_id"] == bruno.id
    assert "R2.in_order" in entry["routing"]["rule_ids"]
    assert alice.phone is not None and alice.phone.calls_cancelled() == 1 and alice.phone.calls_answered() == 0


def test_r2_evenly_offers_each_call_to_the_member_longest_since_their_last_offer(world: LiveWorld) -> None:
    members = [world.staff("Alice"), world.staff("Bruno"), world.staff("Carla")]
    number = world.number(world.queue(members, "evenly"))
    run = world.trunk.call(world.gateway, *(TrunkCall(number.dial, f"06550021{i:02d}") for i in range(4)),
                           talk_ms=100)
    entries = [world.logged(call_id) for call_id in answered(run, 4)]
    alice, bruno, carla = members
    assert [e["answered_by_id"] for e in entries] == [alice.id, bruno.id, carla.id, alice.id]
    assert all(e["offered_ids"] == [e["answered_by_id"]] and "R2.evenly" in e["routing"]["rule_ids"]
               for e in entries), entries
    assert [m.phone.calls_answered() for m in members if m.phone] == [2, 1, 1]


def test_r2_evenly_counts_an_unanswered_offer_as_a_turn(world: LiveWorld) -> None:
    alice, bruno, carla = world.staff("Alice", phone="ring"), world.staff("Bruno"), world.staff("Carla")
    number = world.number(world.queue([alice, bruno, carla], "evenly"))
    run = world.trunk.call(world.gateway, TrunkCall(number.dial, "0655002151"), TrunkCall(number.dial, "0655002152"),
                           talk_ms=100, time_limit_s=25)
    first, second = (world.logged(call_id) for call_id in answered(run, 2))
    assert first["offered_ids"] == [alice.id, bruno.id] and first["answered_by_id"] == bruno.id
    # Alice's unanswered offer was her turn: Carla, never offered, is next (by position it would be Alice).
    assert second["offered_ids"] == [carla.id] and second["answered_by_id"] == carla.id


def test_r2_everybody_rings_every_member_at_once(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice", phone="ring"), world.staff("Bruno", answer_after_ms=500)
    number = world.number(world.queue([alice, bruno], "everybody"))
    [call_id] = answered(world.call(number, "0655002201"))
    entry = world.logged(call_id)
    assert sorted(entry["offered_ids"]) == sorted([alice.id, bruno.id]) and entry["answered_by_id"] == bruno.id
    assert "R2.everybody" in entry["routing"]["rule_ids"]
    assert alice.phone is not None and alice.phone.calls_offered() == 1 and alice.phone.calls_cancelled() == 1
    assert (entry["answered_at"] or "") < entry["ended_at"]


def test_r3_a_member_already_on_a_call_is_skipped(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno")
    first_line = world.number(world.queue([alice]))
    second_line = world.number(world.queue([alice, bruno]))
    talking = world.start_call(first_line, "0655002301", talk_ms=3000)
    assert alice.phone is not None
    alice.phone.wait_calls(answered=1)
    [call_id] = answered(world.call(second_line, "0655002302"))
    entry = world.logged(call_id)
    assert entry["offered_ids"] == [bruno.id] and entry["answered_by_id"] == bruno.id
    assert "R3.busy" in entry["routing"]["rule_ids"]
    assert alice.phone.calls_offered() == 1  # never offered the second call
    answered(talking.wait())


def test_r3_a_member_whose_phone_answers_busy_is_skipped_for_the_next_member(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice", phone="busy"), world.staff("Bruno")
    number = world.number(world.queue([alice, bruno], "in_order"))
    [call_id] = answered(world.call(number, "0655002351"))
    entry = world.logged(call_id)
    assert entry["offered_ids"] == [alice.id, bruno.id] and entry["answered_by_id"] == bruno.id
    assert alice.phone is not None and alice.phone.calls_rejected_busy() == 1


def test_r3_a_member_with_no_phone_is_skipped(world: LiveWorld) -> None:
    alice = world.staff("Alice", phone=None)  # has a SIP secret, no phone registered
    carla = world.employee("Carla", secret=False)  # could not even register one
    bruno = world.staff("Bruno")
    number = world.number(world.queue([alice, carla, bruno], "everybody"))
    [call_id] = answered(world.call(number, "0655002401"))
    entry = world.logged(call_id)
    assert entry["offered_ids"] == [bruno.id] and entry["answered_by_id"] == bruno.id
    assert "R3.no_phone" in entry["routing"]["rule_ids"]
    notes = "\n".join(entry["routing"]["notes"])
    for skipped in (alice, carla):
        assert f"employee {skipped.id}, has no registered phone: skipped" in notes, notes


def test_r3_no_answer_chain_passes_the_call_to_another_queue_group(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice", phone="ring"), world.staff("Bruno")
    backup = world.queue([bruno])
    number = world.number(world.queue([alice], no_answer_action="queue_group", no_answer_group_id=backup["id"]))
    [call_id] = answered(world.call(number, "0655002501", time_limit_s=20))
    entry = world.logged(call_id)
    assert entry["offered_ids"] == [alice.id, bruno.id] and entry["answered_by_id"] == bruno.id
    assert "R3.no_answer.queue_group" in entry["routing"]["rule_ids"]
    assert "T10" in entry["crm"]["rule_ids"] and entry["crm"]["responsible_id"] == alice.id  # the number's group


def test_r3_no_answer_chain_passes_the_call_to_an_employee(world: LiveWorld) -> None:
    alice, carla = world.staff("Alice", phone="ring"), world.staff("Carla")
    number = world.number(world.queue([alice], no_answer_action="employee", no_answer_employee_id=carla.id))
    [call_id] = answered(world.call(number, "0655002601", time_limit_s=20))
    entry = world.logged(call_id)
    assert entry["offered_ids"] == [alice.id, carla.id] and entry["answered_by_id"] == carla.id
    assert "R3.no_answer.employee" in entry["routing"]["rule_ids"]


def test_r3_no_answer_chain_hangs_up_a_missed_call_with_its_activity_left_open(world: LiveWorld) -> None:
    alice = world.staff("Alice", phone="ring")
    number = world.number(world.queue([alice], no_answer_action="hangup"))
    run = world.call(number, "0655002701", expect=408, time_limit_s=20)
    assert run.successes == 1 and run.statuses == [408], run.explain()  # the ring time ran out (§16.7 Timer C)
    entry = world.logged(run.call_ids[0])
    assert (entry["outcome"], entry["status"]) == ("missed", 408)
    assert entry["answered_at"] is None and entry["offered_ids"] == [alice.id]
    assert "R3.no_answer.hangup" in entry["routing"]["rule_ids"]
    [activity] = world.activities(entry["interaction_key"])
    assert activity["completed_at"] is None  # a missed call stays to be called back
    assert json.loads(activity["details"])["outcome"] == "missed"


def test_r3_a_loop_in_the_no_answer_chain_is_refused_at_configuration(world: LiveWorld) -> None:
    alice = world.employee("Alice", secret=False)
    first = world.queue([alice])
    second = world.queue([alice], no_answer_action="queue_group", no_answer_group_id=first["id"])
    status, answer = world.admin.call("PATCH", f"/queue-groups/{first['id']}",
                                      {"no_answer_action": "queue_group", "no_answer_group_id": second["id"]})
    assert status == 409 and "loop" in answer["detail"], answer
    status, answer = world.admin.call("PATCH", f"/queue-groups/{first['id']}",
                                      {"no_answer_action": "queue_group", "no_answer_group_id": first["id"]})
    assert status == 409 and "loop" in answer["detail"], answer
    assert world.admin.get(f"/queue-groups/{first['id']}")["no_answer_action"] == "hangup"  # nothing stored


def test_caller_hanging_up_before_anyone_answers_leaves_a_missed_call_activity_open(world: LiveWorld) -> None:
    alice = world.staff("Alice", phone="ring")
    number = world.number(world.queue([alice], ring_time_s=30))
    run = world.call(number, "0655002801", cancel_after_ms=800)
    assert run.statuses == [487] and run.calls[0].cancelled, run.explain()
    entry = world.logged(run.call_ids[0])
    assert (entry["outcome"], entry["status"], entry["answered_by_id"]) == ("missed", 487, None)
    assert entry["offered_ids"] == [alice.id] and entry["crm"]["action"] == "create_lead"
    [(kind, _)] = world.items(entry, "created")
    assert kind == "lead"
    [activity] = world.activities(entry["interaction_key"])
    assert activity["completed_at"] is None
    details = json.loads(activity["details"])
    assert (details["outcome"], details["answered_by"]) == ("missed", None)
    assert alice.phone is not None
    alice.phone.wait_calls(cancelled=1)


def test_c2_a_retransmitted_invite_and_a_duplicated_bye_give_one_lead_and_one_activity(world: LiveWorld) -> None:
    alice = world.staff("Alice", answer_after_ms=500)
    number = world.number(world.queue([alice]))
    # The copy goes 100 ms after the last response (the 180): well before the 200 at 500 ms, never racing
    # a response that follows the 100 Trying within a millisecond.
    run = world.call(number, "0655002901", retransmit_invite_after_ms=100, duplicate_bye=True)
    [call_id] = answered(run)
    assert run.calls[0].invites_sent == 2 and run.calls[0].bye_statuses == (200, 200), run.explain()
    entry = world.logged(call_id)  # the log filter by Call-ID asserts a single row
    assert len(world.items_with_phone("lead", "+33655002901")) == 1
    assert len(world.activities(entry["interaction_key"])) == 1
    assert alice.phone is not None and alice.phone.calls_offered() == 1


def test_c2_two_simultaneous_calls_from_one_new_caller_give_one_lead(world: LiveWorld) -> None:
    alice = world.staff("Alice", answer_after_ms=300)
    number = world.number(world.queue([alice]))
    run = world.trunk.call(world.gateway, TrunkCall(number.dial, "0655003001"), TrunkCall(number.dial, "0655003001"),
                           concurrent=2, talk_ms=300)
    entries = [world.logged(call_id) for call_id in answered(run, 2)]
    [lead] = wait_for("the caller's lead", lambda: world.items_with_phone("lead", "+33655003001"))
    assert sorted(e["crm"]["action"] for e in entries) == ["attach", "create_lead"], [e["crm"] for e in entries]
    assert all(("lead", lead["id"]) in world.items(e) for e in entries)
    assert len(world.items_with_phone("lead", "+33655003001")) == 1
    assert [len(world.activities(e["interaction_key"])) for e in entries] == [1, 1]
