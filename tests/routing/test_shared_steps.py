"""Queue members' targets and ring steps are shared between calls: an admin edit must still show at once.

The directory snapshot is rebuilt on every admin edit, so a call after the edit routes over new specs;
whatever routing keeps from call to call (targets, steps, a step's text, a group's member order) must
follow them, and *evenly*'s order must stay SPEC R2's whatever the offers.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from gateway.calls.journal_records import RoutedCall
from gateway.routing import (
    EmployeeSpec,
    MemberSpec,
    NoAnswer,
    QueueGroupSpec,
    RingStep,
    Strategy,
    Target,
    route,
)
from gateway.routing.queues import ring_order
from tests.routing.builders import EMPLOYEES, EVERYONE_FREE, group, inputs


def _extensions(decision_steps: tuple[RingStep, ...]) -> list[str | None]:
    return [target.extension for step in decision_steps for target in step.targets]


def test_r2_a_changed_extension_rings_the_new_extension_on_the_next_call() -> None:
    evenly = group(strategy=Strategy.EVENLY)
    assert _extensions(route(inputs(evenly)).steps) == ["1007", "1008", "1009"]
    moved = {**EMPLOYEES, 8: EmployeeSpec(8, "2008")}
    presence = replace(EVERYONE_FREE, registered=frozenset({"1007", "2008", "1009"}))
    decision = route(inputs(evenly, employees=moved, presence=presence))
    assert _extensions(decision.steps) == ["1007", "2008", "1009"]
    assert "employee 8 (extension 2008) for 20 s" in decision.steps[1].describe()


def test_r2_a_changed_group_gives_new_ring_times_and_rules_on_the_next_call() -> None:
    before = route(inputs(group(strategy=Strategy.IN_ORDER, ring_time=20.0)))
    after = route(inputs(group(strategy=Strategy.EVENLY, ring_time=25.0, ring_times={9: 5.0})))
    assert [(s.ring_time, s.rule_ids) for s in before.steps] == [(20.0, ("R2", "R2.in_order"))] * 3
    assert [(s.ring_time, s.rule_ids) for s in after.steps] == [
        (25.0, ("R2", "R2.evenly")), (25.0, ("R2", "R2.evenly")), (5.0, ("R2", "R2.evenly"))]


def test_r2_a_changed_member_list_changes_the_groups_order() -> None:
    spec = group(members=(7, 8, 9))
    edited = replace(spec, members=(MemberSpec(9, 1), MemberSpec(7, 2)))
    assert [m.employee_id for m in spec.by_position] == [7, 8, 9]
    assert [m.employee_id for m in edited.by_position] == [9, 7]


def test_r2_a_steps_text_does_not_change_what_the_step_is() -> None:
    step = RingStep((Target.employee(4, "1004"), Target.employee(6, "1006")), 12.5, ("R2", "R2.everybody"))
    fresh = RingStep((Target.employee(4, "1004"), Target.employee(6, "1006")), 12.5, ("R2", "R2.everybody"))
    assert step.describe() == "employee 4 (extension 1004) + employee 6 (extension 1006) for 12.5 s"
    assert step == fresh and hash(step) == hash(fresh) and repr(step) == repr(fresh)
    assert RingStep((Target.sip_uri("sip:a@b"),)).describe() == "uri sip:a@b"


def test_c1_the_call_logs_explanation_follows_a_replaced_decision() -> None:
    first, second = route(inputs(group())), route(inputs(group(members=(8,))))
    call = RoutedCall("c1", "inbound", 1, "+33142685300", "x", None, first)
    assert "employee 7 (extension 1007)" in call.routing_record()["explanation"][0]
    call.decision = second
    record = call.routing_record()
    assert record["explanation"][0].startswith("ring employee 8 (extension 1008) for 20 s (rules:")
    assert record["rule_ids"] == list(second.rule_ids)


def _reference_evenly(members: tuple[MemberSpec, ...], offers: dict[int, float]) -> list[int]:
    """SPEC R2 evenly, spelled out: never offered first, then the longest since their last offer; ties
    by position, then employee id."""
    def turn(member: MemberSpec) -> tuple[int, float, int, int]:
        last = offers.get(member.employee_id)
        position = (member.position, member.employee_id)
        return (0, 0.0, *position) if last is None else (1, last, *position)
    return [member.employee_id for member in sorted(members, key=turn)]


@given(
    st.dictionaries(st.integers(1, 30), st.integers(1, 4), max_size=12),
    st.dictionaries(st.integers(1, 30), st.sampled_from([0.0, 1.0, 2.5, 7.0]), max_size=30),
)
def test_r2_evenly_order_is_specs_whatever_the_offers(positions: dict[int, int], offers: dict[int, float]) -> None:
    members = tuple(MemberSpec(employee_id, position) for employee_id, position in positions.items())
    spec = QueueGroupSpec(1, "g", Strategy.EVENLY, 20.0, members, NoAnswer.hangup())
    assert [m.employee_id for m in ring_order(spec, offers)] == _reference_evenly(members, offers)
