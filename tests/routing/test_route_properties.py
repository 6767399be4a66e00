"""Properties of `route` over random numbers, groups, chains (loops included), presence and ring plans."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.crm_bridge.linking import RULE_QUEUE_GROUP, RingPlan
from gateway.routing import (
    EmployeeSpec,
    MemberSpec,
    NoAnswer,
    NumberSpec,
    Presence,
    QueueGroupSpec,
    RoutingInputs,
    Strategy,
    TargetKind,
    route,
)
from gateway.routing.explanation import RULE_TEXTS
from tests.routing.builders import extension, request

EMPLOYEE_IDS = st.integers(1, 8)
GROUP_IDS = st.integers(1, 5)  # 5 never exists: a dangling reference
ring_times = st.floats(1.0, 60.0, allow_nan=False)

# Most employees can take a call, so that decisions ring many of them (and overlaps between groups show).
few_employees = st.sets(EMPLOYEE_IDS, max_size=3)

no_answers = st.one_of(
    st.just(NoAnswer.hangup()),
    GROUP_IDS.map(NoAnswer.to_group),
    EMPLOYEE_IDS.map(NoAnswer.to_employee),
    st.just(NoAnswer.to_outside("+33612345678")),
)


@st.composite
def queue_group(draw: st.DrawFn, group_id: int) -> QueueGroupSpec:
    member_ids = draw(st.lists(st.integers(1, 9), unique=True, max_size=6))
    members = tuple(
        MemberSpec(e, draw(st.integers(1, 6)), draw(st.none() | ring_times)) for e in member_ids
    )
    return QueueGroupSpec(group_id, f"g{group_id}", draw(st.sampled_from(Strategy)), draw(ring_times),
                          members, draw(no_answers))


@st.composite
def routing_inputs(draw: st.DrawFn) -> RoutingInputs:
    group_ids = draw(st.sets(st.integers(1, 4)))
    groups = {g: draw(queue_group(g)) for g in group_ids}
    responsible = draw(st.none() | EMPLOYEE_IDS)
    plan = draw(st.none() | st.just(RingPlan(
        responsible, None if responsible is None else 15.0, (), ("T7", RULE_QUEUE_GROUP) if responsible else (RULE_QUEUE_GROUP,),
    )))
    inactive, no_extension, unregistered = draw(few_employees), draw(few_employees), draw(few_employees)
    employees = {i: EmployeeSpec(i, None if i in no_extension else extension(i), i not in inactive) for i in range(1, 9)}
    presence = Presence(
        registered=frozenset(extension(i) for i in range(1, 9) if i not in unregistered),
        busy=frozenset(draw(few_employees)),
    )
    number = NumberSpec(1, "+33142685300", "FR", draw(st.none() | GROUP_IDS), 15.0, True)
    return RoutingInputs(request(), number, plan, employees, groups, presence,
                         draw(st.dictionaries(EMPLOYEE_IDS, st.floats(0, 1000))))


@settings(max_examples=300, deadline=None)
@given(routing_inputs())
def test_r1_every_decision_has_steps_or_a_status_and_rule_ids(inputs: RoutingInputs) -> None:
    decision = route(inputs)
    assert (decision.status is None) == bool(decision.steps)
    assert decision.status in (None, 480)
    assert decision.rule_ids
    assert all(step.rule_ids and step.targets for step in decision.steps)
    assert all(step.ring_time is None or step.ring_time > 0 for step in decision.steps)


@settings(max_examples=300, deadline=None)
@given(routing_inputs())
def test_r2_no_employee_is_rung_twice_in_one_decision(inputs: RoutingInputs) -> None:
    employees = Counter(t.employee_id for t in route(inputs).targets if t.kind is TargetKind.EMPLOYEE)
    assert all(count == 1 for count in employees.values())


@settings(max_examples=300, deadline=None)
@given(routing_inputs())
def test_r3_only_active_free_employees_with_a_registered_phone_ring(inputs: RoutingInputs) -> None:
    for target in route(inputs).targets:
        if target.kind is not TargetKind.EMPLOYEE:
            continue
        assert target.employee_id is not None
        employee = inputs.employees[target.employee_id]
        assert employee.active and target.extension == employee.extension
        assert target.extension in inputs.presence.registered
        assert target.employee_id not in inputs.presence.busy


@settings(max_examples=300, deadline=None)
@given(routing_inputs())
def test_r1_every_rule_id_of_a_decision_has_a_sentence(inputs: RoutingInputs) -> None:
    decision = route(inputs)
    assert set(decision.rule_ids) <= set(RULE_TEXTS)
    assert all(set(step.rule_ids) <= set(RULE_TEXTS) for step in decision.steps)


@settings(max_examples=200, deadline=None)
@given(routing_inputs())
def test_r2_evenly_offers_the_call_to_the_longest_waiting_first(inputs: RoutingInputs) -> None:
    number_group = inputs.groups.get(inputs.number.queue_group_id or 0) if inputs.number else None
    if number_group is None or number_group.strategy is not Strategy.EVENLY:
        return
    # The number's own group's steps carry exactly these rule ids (T7 and chained steps carry others).
    order = [t.employee_id for step in route(inputs).steps if step.rule_ids == ("R2", "R2.evenly") for t in step.targets]
    turns = [inputs.last_offer.get(e, -1.0) for e in order if e is not None]
    assert turns == sorted(turns)
