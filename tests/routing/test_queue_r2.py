"""SPEC R2: a queue group rings its members in order, evenly or everybody at once, with ring times."""

from __future__ import annotations

import pytest

from gateway.routing import MemberSpec, NoAnswer, QueueGroupSpec, Strategy, route
from gateway.routing.queues import ring_order
from tests.routing.builders import group, inputs, rung


def test_r2_in_order_rings_position_1_first_one_member_at_a_time() -> None:
    members = (MemberSpec(9, 3), MemberSpec(7, 1), MemberSpec(8, 2))
    shuffled = QueueGroupSpec(10, "sales", Strategy.IN_ORDER, 20.0, members, NoAnswer.hangup())
    decision = route(inputs(shuffled))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert all(step.rule_ids == ("R2", "R2.in_order") for step in decision.steps)


def test_r2_in_order_each_member_rings_for_their_own_ring_time_else_the_groups() -> None:
    decision = route(inputs(group(ring_time=25.0, ring_times={8: 10.0})))
    assert [step.ring_time for step in decision.steps] == [25.0, 10.0, 25.0]


def test_r2_evenly_rings_the_member_longest_since_their_last_offer_first() -> None:
    decision = route(inputs(group(strategy=Strategy.EVENLY), last_offer={7: 300.0, 8: 100.0, 9: 200.0}))
    assert rung(decision.steps) == [(8,), (9,), (7,)]
    assert decision.rule_ids[:3] == ("R1", "R2", "R2.evenly")


def test_r2_evenly_a_member_never_offered_a_call_goes_first() -> None:
    decision = route(inputs(group(strategy=Strategy.EVENLY), last_offer={7: 100.0, 8: 50.0}))
    assert rung(decision.steps) == [(9,), (8,), (7,)]


def test_r2_evenly_ties_go_by_position() -> None:
    evenly = group(members=(9, 7, 8), strategy=Strategy.EVENLY)
    assert rung(route(inputs(evenly)).steps) == [(9,), (7,), (8,)]
    assert rung(route(inputs(evenly, last_offer={9: 5.0, 7: 5.0, 8: 5.0})).steps) == [(9,), (7,), (8,)]


def test_r2_evenly_keeps_each_members_ring_time() -> None:
    evenly = group(strategy=Strategy.EVENLY, ring_time=30.0, ring_times={9: 12.0})
    decision = route(inputs(evenly, last_offer={7: 3.0, 8: 2.0}))
    assert [(rung([step])[0], step.ring_time) for step in decision.steps] == [((9,), 12.0), ((8,), 30.0), ((7,), 30.0)]


def test_r2_in_order_ignores_last_offers() -> None:
    assert [m.employee_id for m in ring_order(group(), {7: 9.0, 8: 1.0})] == [7, 8, 9]


def test_r2_everybody_rings_all_members_at_once_for_the_groups_ring_time() -> None:
    decision = route(inputs(group(strategy=Strategy.EVERYBODY, ring_time=18.0, ring_times={7: 5.0})))
    assert rung(decision.steps) == [(7, 8, 9)]
    assert decision.steps[0].ring_time == 18.0
    assert decision.steps[0].rule_ids == ("R2", "R2.everybody")


@pytest.mark.parametrize(("stored", "strategy"), [
    ("sequential", Strategy.IN_ORDER), ("simultaneous", Strategy.EVERYBODY),
    ("in_order", Strategy.IN_ORDER), ("evenly", Strategy.EVENLY), ("everybody", Strategy.EVERYBODY),
])
def test_r2_strategies_read_from_storage_include_the_names_used_before(stored: str, strategy: Strategy) -> None:
    assert Strategy.from_stored(stored) is strategy


def test_r2_an_unknown_strategy_is_refused_with_the_names_to_use() -> None:
    with pytest.raises(ValueError, match="in_order, evenly, everybody"):
        Strategy.from_stored("round_robin")


@pytest.mark.parametrize("ring_time", [0.0, -1.0, float("nan"), float("inf")])
def test_r2_a_ring_time_must_be_a_positive_number_of_seconds(ring_time: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        group(ring_time=ring_time)
    with pytest.raises(ValueError, match="positive number of seconds"):
        MemberSpec(7, 1, ring_time)


def test_r2_a_group_listing_an_employee_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        group(members=(7, 8, 7))
