"""SPEC R3: busy members and members without a phone are skipped; the no-answer chain; its loop guard."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.routing import EmployeeSpec, NoAnswer, NoAnswerKind, Strategy, Target, TargetKind, route
from tests.routing.builders import EMPLOYEES, NUMBER, busy, extension, group, inputs, rung, without_phone


def test_r3_busy_member_skipped() -> None:
    decision = route(inputs(presence=busy(8)))
    assert rung(decision.steps) == [(7,), (9,)]
    assert "R3.busy" in decision.rule_ids
    assert any("employee 8" in note and "already on a call" in note for note in decision.notes)


def test_r3_member_without_phone_skipped() -> None:
    decision = route(inputs(presence=without_phone(7)))
    assert rung(decision.steps) == [(8,), (9,)]
    assert "R3.no_phone" in decision.rule_ids
    assert any("employee 7" in note and "no registered phone" in note for note in decision.notes)


def test_r3_skipped_members_are_left_out_of_everybody_too() -> None:
    decision = route(inputs(group(strategy=Strategy.EVERYBODY), presence=busy(7, 9)))
    assert rung(decision.steps) == [(8,)]


def test_r3_inactive_member_and_member_without_extension_are_skipped() -> None:
    employees = {**EMPLOYEES, 7: EmployeeSpec(7, extension(7), active=False), 8: EmployeeSpec(8, None)}
    decision = route(inputs(employees=employees))
    assert rung(decision.steps) == [(9,)]
    assert {"R3.inactive", "R3.no_extension"} <= set(decision.rule_ids)


def test_r3_a_member_id_naming_no_employee_is_skipped() -> None:
    decision = route(inputs(group(members=(7, 42))))
    assert rung(decision.steps) == [(7,)]
    assert "R3.unknown_employee" in decision.rule_ids


def test_r3_no_answer_chain_to_group() -> None:
    first = group(10, (7, 8), no_answer=NoAnswer.to_group(20))
    second = group(20, (1, 2), Strategy.EVERYBODY, ring_time=30.0)
    decision = route(inputs(first, second))
    assert rung(decision.steps) == [(7,), (8,), (1, 2)]
    assert decision.steps[-1].rule_ids == ("R3.no_answer.queue_group", "R2", "R2.everybody")
    assert decision.steps[-1].ring_time == 30.0
    assert decision.rule_ids[-1] == "R3.no_answer.hangup"


def test_r3_no_answer_chain_to_group_skips_members_the_call_already_rang() -> None:
    first = group(10, (7, 8), no_answer=NoAnswer.to_group(20))
    decision = route(inputs(first, group(20, (8, 9))))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert "R2.already_rung" in decision.rule_ids


def test_r3_no_answer_chain_to_employee() -> None:
    decision = route(inputs(group(ring_time=22.0, no_answer=NoAnswer.to_employee(5))))
    assert rung(decision.steps) == [(7,), (8,), (9,), (5,)]
    assert decision.steps[-1].targets == (Target.employee(5, extension(5)),)
    assert decision.steps[-1].ring_time == 22.0
    assert decision.rule_ids[-1] == "R3.no_answer.employee"


def test_r3_no_answer_employee_busy_is_skipped_too() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_employee(5)), presence=busy(5)))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.rule_ids[-2:] == ("R3.no_answer.employee", "R3.busy")


def test_r3_no_answer_employee_already_rung_is_not_rung_again() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_employee(7))))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert "R2.already_rung" in decision.rule_ids


def test_r3_no_answer_chain_to_outside_leaves_through_the_numbers_trunk() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_outside("06 12 34 56 78"))))
    last = decision.steps[-1]
    assert last.targets == (Target(TargetKind.OUTSIDE, uri="sip:0612345678@sip.provider.example:5060",
                                   number="+33612345678", trunk_id=4, caller_id="0142685300"),)
    assert last.ring_time is None
    assert decision.rule_ids[-1] == "R3.no_answer.outside_number"


def test_r3_no_answer_chain_to_outside_without_a_trunk_rings_nobody_there() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_outside("+33612345678")), number=replace(NUMBER, trunk_id=None)))
    assert all(target.kind is not TargetKind.OUTSIDE for target in decision.targets)
    assert decision.rule_ids[-2:] == ("R3.no_answer.outside_number", "R3.no_trunk")


def test_r3_no_answer_outside_number_rings_even_when_no_member_can() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_outside("+33612345678")), presence=busy(7, 8, 9)))
    assert rung(decision.steps) == [(None,)]
    assert decision.status is None


def test_r3_no_answer_chain_hangup() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.hangup())))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.rule_ids[-1] == "R3.no_answer.hangup"


def test_r3_runtime_loop_guard() -> None:
    """A loop refused at configuration could still reach routing (a table edited by hand): it stops."""
    groups = (group(10, (7,), no_answer=NoAnswer.to_group(20)),
              group(20, (8,), no_answer=NoAnswer.to_group(30)),
              group(30, (9,), no_answer=NoAnswer.to_group(20)))
    decision = route(inputs(*groups))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.rule_ids[-1] == "R3.chain_loop"
    assert any("20 → 30 → 20" in note for note in decision.notes)
    assert not any("rung already" in note for note in decision.notes), "the chain entered group 20 twice"


def test_r3_runtime_loop_guard_on_a_group_chained_to_itself() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_group(10))))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert any("10 → 10" in note for note in decision.notes)


def test_r3_chain_to_a_missing_group_stops_with_a_note() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_group(77))))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.rule_ids[-1] == "R3.chain_missing_group"
    assert any("77" in note for note in decision.notes)


def test_r3_chain_reaches_people_when_the_numbers_group_has_nobody() -> None:
    first = group(10, (7,), no_answer=NoAnswer.to_group(20))
    decision = route(inputs(first, group(20, (1,)), presence=without_phone(7)))
    assert rung(decision.steps) == [(1,)]


@pytest.mark.parametrize("kind", [NoAnswerKind.QUEUE_GROUP, NoAnswerKind.EMPLOYEE, NoAnswerKind.OUTSIDE_NUMBER])
def test_r3_a_no_answer_chain_must_say_where_the_call_goes(kind: NoAnswerKind) -> None:
    with pytest.raises(ValueError, match="needs"):
        NoAnswer(kind)


def test_r3_next_group_feeds_the_configuration_loop_check() -> None:
    assert NoAnswer.to_group(3).next_group == 3
    assert NoAnswer.to_employee(3).next_group is None
    assert replace(NoAnswer.hangup()).next_group is None
