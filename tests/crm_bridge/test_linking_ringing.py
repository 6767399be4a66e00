"""T7's routing half: a known caller rings their responsible first, then the number's queue group.

`ring_responsible` is pure: the interaction (option, direction, queue, inactive employees), the plan
`decide` made for it, and the ring timeout the number gives the responsible before the queue takes over.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.crm_bridge.linking import (
    RULE_QUEUE_GROUP,
    Channel,
    Direction,
    Interaction,
    RingPlan,
    decide,
    explain_ring,
    ring_responsible,
)
from tests.crm_bridge.test_linking import QUEUE, call, known
from tests.crm_bridge.test_linking_properties import ids, interactions

CLIENT = (known("contact", 3, 11), known("deal", 20, 12))


def ring(interaction: Interaction, timeout: float = 20.0) -> RingPlan:
    return ring_responsible(interaction, decide(interaction), ring_timeout=timeout)


def test_t7_known_caller_rings_the_responsible_for_the_timeout_then_the_queue() -> None:
    plan = ring(call(items=CLIENT, route_known_to_responsible=True), timeout=15.0)
    assert plan == RingPlan(responsible_id=11, ring_timeout=15.0, queue=QUEUE,
                            rule_ids=("T7", RULE_QUEUE_GROUP))
    assert plan.order == (11, *QUEUE)


def test_t7_the_responsible_is_not_rung_a_second_time_with_the_queue() -> None:
    plan = ring(call(items=CLIENT, route_known_to_responsible=True, queue_member_ids=(8, 11, 9)))
    assert (plan.responsible_id, plan.queue) == (11, (8, 9))


def test_t7_fallback_queue_holds_only_active_members_in_order() -> None:
    plan = ring(call(items=CLIENT, route_known_to_responsible=True, inactive=frozenset({8})))
    assert plan.queue == (7, 9)


def test_t7_an_inactive_responsible_is_not_rung_the_queue_takes_the_call() -> None:
    plan = ring(call(items=CLIENT, route_known_to_responsible=True, inactive=frozenset({11})))
    assert (plan.responsible_id, plan.ring_timeout, plan.queue) == (None, None, QUEUE)
    assert plan.rule_ids == ("T7", RULE_QUEUE_GROUP)
    assert any("employee 11" in note and "inactive" in note for note in plan.notes)


@pytest.mark.parametrize(
    "interaction",
    [
        call(items=CLIENT, route_known_to_responsible=False),
        call(route_known_to_responsible=True),
        call(items=(known("contact", 3, None),), route_known_to_responsible=True),
        call(is_employee=True, route_known_to_responsible=True),
        call(is_exception=True, route_known_to_responsible=True),
    ],
    ids=["option-off", "new-caller", "no-responsible", "employee-without-items", "exception-unknown"],
)
def test_t7_without_a_responsible_to_ring_the_call_goes_to_the_queue(interaction: Interaction) -> None:
    plan = ring(interaction)
    assert (plan.responsible_id, plan.ring_timeout) == (None, None)
    assert plan.queue == QUEUE and plan.order == QUEUE
    assert plan.rule_ids == (RULE_QUEUE_GROUP,)


@pytest.mark.parametrize("screen", ["is_employee", "is_exception"])
def test_r1_t8_t9_change_what_the_crm_records_never_where_the_call_rings(screen: str) -> None:
    interaction = call(items=CLIENT, route_known_to_responsible=True, **{screen: True})
    assert not decide(interaction).create
    plan = ring(interaction)
    assert (plan.responsible_id, plan.queue) == (11, QUEUE)
    assert plan.rule_ids == ("T7", RULE_QUEUE_GROUP)


def test_r1_t8_client_whose_responsible_left_goes_to_the_queue_with_a_note() -> None:
    plan = ring(call(items=CLIENT, route_known_to_responsible=True, is_exception=True, inactive=frozenset({11})))
    assert plan.responsible_id is None and plan.queue == QUEUE
    assert any("employee 11" in note for note in plan.notes)


def test_t7_repeat_lead_of_a_known_client_still_rings_the_clients_responsible() -> None:
    interaction = call(items=(known("contact", 3, 11),), repeat_sales=True, route_known_to_responsible=True)
    assert decide(interaction).create == ("lead",)
    assert ring(interaction).responsible_id == 11


def test_t7_legacy_attachment_rings_the_responsible_of_the_item_the_call_joins() -> None:
    items = (known("contact", 3, 11), known("deal", 21, 13))
    plan = ring(call(items=items, legacy_lead_mode=True, route_known_to_responsible=True))
    assert plan.responsible_id == 13


def test_t7_nobody_to_ring_when_the_queue_is_empty_and_the_caller_unknown() -> None:
    plan = ring(call(queue_member_ids=()))
    assert plan.order == () and plan.rule_ids == (RULE_QUEUE_GROUP,)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_t7_ring_timeout_must_be_a_positive_finite_number_of_seconds(timeout: float) -> None:
    with pytest.raises(ValueError, match="ring_timeout"):
        ring(call(items=CLIENT, route_known_to_responsible=True), timeout=timeout)


def test_t7_ringing_is_for_inbound_calls_only() -> None:
    outbound = call(items=CLIENT, route_known_to_responsible=True, direction=Direction.OUTBOUND)
    with pytest.raises(ValueError, match="inbound"):
        ring(outbound)
    mail = call(items=CLIENT, route_known_to_responsible=True, channel="email")
    with pytest.raises(ValueError, match="call"):
        ring(mail)


def test_t7_ring_plan_must_belong_to_the_interaction() -> None:
    interaction = call(items=CLIENT, route_known_to_responsible=True)
    other = replace(decide(interaction), interaction_key="call:x")
    with pytest.raises(ValueError, match="interaction"):
        ring_responsible(interaction, other, ring_timeout=20.0)


def test_t7_explain_ring_gives_one_line_per_rule_id() -> None:
    plan = ring(call(items=CLIENT, route_known_to_responsible=True, inactive=frozenset({8})), timeout=15.0)
    lines = explain_ring(plan)
    assert lines[0] == "T7: known caller → ring their responsible, employee 11, alone for 15 s"
    assert lines[1] == f"{RULE_QUEUE_GROUP}: then the number's queue group: employees 7, 9"
    assert [line.split(":", 1)[0] for line in lines] == list(plan.rule_ids)


@given(interactions, st.frozensets(ids, max_size=6))
def test_t7_ring_order_never_holds_an_inactive_employee_or_a_duplicate(interaction: Interaction,
                                                                      inactive: frozenset[int]) -> None:
    assume(interaction.direction == Direction.INBOUND and interaction.channel == Channel.CALL)
    plan = ring(Interaction(**{**interaction.__dict__, "inactive_employee_ids": inactive}))
    assert not set(plan.order) & inactive
    assert len(set(plan.order)) == len(plan.order)
    assert set(plan.queue) <= set(interaction.settings.queue_member_ids)
    assert (plan.responsible_id is None) == (plan.ring_timeout is None)
    if plan.responsible_id is not None:
        assert plan.rule_ids == ("T7", RULE_QUEUE_GROUP)


def test_t7_a_responsible_deactivated_since_the_plan_was_decided_is_not_rung() -> None:
    plan = decide(call(items=CLIENT, route_known_to_responsible=True))
    now = call(items=CLIENT, route_known_to_responsible=True, inactive=frozenset({11}))
    ringing = ring_responsible(now, plan, ring_timeout=20.0)
    assert (ringing.responsible_id, ringing.queue, ringing.rule_ids) == (None, QUEUE, ("T7", RULE_QUEUE_GROUP))
    assert explain_ring(ringing)[-1] == "note: the client's responsible, employee 11, is inactive: never made responsible"
