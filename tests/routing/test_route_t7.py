"""T7 (with R1, R3): a known caller rings their responsible alone for the number's ring time, then the
queue group. Routing consumes the linking engine's ring plan; the plans here come from the real engine."""

from __future__ import annotations

import re

from gateway.config import StaticRoute
from gateway.routing import NoAnswer, RingStep, StaticTable, Strategy, Target, explain_lines, route
from tests.crm_bridge.test_linking import known
from tests.routing.builders import (
    CLIENT,
    NUMBER,
    busy,
    extension,
    group,
    inputs,
    request,
    ring_for,
    rung,
    without_phone,
)


def test_t7_known_caller_rings_the_responsible_alone_for_the_numbers_ring_time_then_the_queue() -> None:
    decision = route(inputs(ring_plan=ring_for(CLIENT)))
    assert decision.steps[0] == RingStep((Target.employee(11, extension(11)),), NUMBER.responsible_ring_time, ("T7",))
    assert rung(decision.steps) == [(11,), (7,), (8,), (9,)]
    assert decision.rule_ids[:2] == ("R1", "T7")


def test_t7_the_responsible_in_the_queue_group_is_not_rung_a_second_time() -> None:
    client = (known("contact", 3, 8),)
    decision = route(inputs(ring_plan=ring_for(client)))
    assert rung(decision.steps) == [(8,), (7,), (9,)]
    assert "R2.already_rung" in decision.rule_ids


def test_t7_with_the_option_off_the_queue_group_takes_the_known_callers_call() -> None:
    decision = route(inputs(ring_plan=ring_for(CLIENT, route_known_to_responsible=False)))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert "T7" not in decision.rule_ids


def test_t7_busy_responsible_is_skipped_as_r3_says_and_the_queue_rings() -> None:
    decision = route(inputs(ring_plan=ring_for(CLIENT), presence=busy(11)))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.rule_ids[:3] == ("R1", "T7", "R3.busy")
    assert any("employee 11" in note and "already on a call" in note for note in decision.notes)


def test_t7_unregistered_responsible_is_skipped_and_the_queue_rings() -> None:
    decision = route(inputs(ring_plan=ring_for(CLIENT), presence=without_phone(11)))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert "R3.no_phone" in decision.rule_ids


def test_t7_inactive_responsible_the_engine_skipped_is_explained_in_the_decision() -> None:
    plan = ring_for(CLIENT, inactive=frozenset({11}))
    decision = route(inputs(ring_plan=plan))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert "T7" in decision.rule_ids
    assert any("employee 11" in note and "inactive" in note for note in decision.notes)
    assert "T7: a known caller's responsible employee is not rung" in explain_lines(decision)


def test_t7_the_ring_time_is_the_one_the_plan_was_made_with() -> None:
    decision = route(inputs(ring_plan=ring_for(CLIENT)))
    lines = explain_lines(decision)
    assert f"T7: the known caller rings their responsible, employee 11, alone for {NUMBER.responsible_ring_time:g} s" in lines


def test_t7_responsible_rung_first_even_when_the_queue_rings_everybody() -> None:
    decision = route(inputs(group(strategy=Strategy.EVERYBODY), ring_plan=ring_for(CLIENT)))
    assert rung(decision.steps) == [(11,), (7, 8, 9)]


def test_t7_responsible_rings_first_whatever_the_queues_last_offers() -> None:
    evenly = group(strategy=Strategy.EVENLY)
    decision = route(inputs(evenly, ring_plan=ring_for(CLIENT), last_offer={11: 999.0, 7: 5.0}))
    assert rung(decision.steps) == [(11,), (8,), (9,), (7,)]


def test_t7_responsible_named_again_by_the_no_answer_chain_is_not_rung_twice() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_employee(11)), ring_plan=ring_for(CLIENT)))
    assert rung(decision.steps) == [(11,), (7,), (8,), (9,)]
    assert decision.rule_ids[-2:] == ("R3.no_answer.employee", "R2.already_rung")



def test_t7_a_ring_plan_means_nothing_for_a_call_to_no_number() -> None:
    table = StaticTable((StaticRoute("pbx", re.compile(r"^\+33199"), "sip:pbx.example"),), {})
    decision = route(inputs(number=None, request=request("+33199000000"), static=table, ring_plan=ring_for(CLIENT)))
    assert decision.uris == ("sip:pbx.example",)
    assert "T7" not in decision.rule_ids
