"""SPEC R1: a call to one of the numbers rings the known caller's responsible (T7), then the number's
queue group; an unknown number goes by the static routes or gets 404; nobody to ring gets 480."""

from __future__ import annotations

import re
from dataclasses import replace

from gateway.config import StaticRoute
from gateway.routing import NoAnswer, Presence, StaticTable, Target, route
from gateway.routing.steps import (
    RULE_NO_CRM_KNOWLEDGE,
    RULE_NO_DIALLED_NUMBER,
    RULE_NO_QUEUE_GROUP,
    RULE_NOBODY_TO_RING,
    RULE_STATIC,
    RULE_UNKNOWN_NUMBER,
    STEPS,
)
from tests.routing.builders import CLIENT, NUMBER, extension, group, inputs, request, ring_for, rung

TRUNK = StaticRoute("to-trunk", re.compile(r"^0\d+$"), "sip:127.0.0.1:5090")
PHONES = StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")


def test_r1_steps_run_in_the_documented_order() -> None:
    assert [step.__name__ for step in STEPS] == [
        "screen", "identify_number", "known_caller_to_responsible", "queue_group", "no_answer_chain",
        "static_fallback",
    ]


def test_r1_new_caller_rings_the_numbers_queue_group_and_the_decision_names_the_number() -> None:
    decision = route(inputs())
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.status is None
    assert decision.number == NUMBER.e164
    assert decision.rule_ids[:3] == ("R1", "R2", "R2.in_order")
    assert decision.targets[0] == Target.employee(7, extension(7))


def test_r1_invite_naming_no_number_is_refused_with_404() -> None:
    decision = route(inputs(request=request(None, None)))
    assert (decision.steps, decision.status, decision.rule_ids) == ((), 404, (RULE_NO_DIALLED_NUMBER,))


def test_r1_to_user_is_the_dialled_number_when_the_request_uri_has_none() -> None:
    decision = route(inputs(request=request(None, "+33142685300")))
    assert decision.forwards


def test_r1_unknown_number_without_static_routes_is_404_and_says_which_number() -> None:
    decision = route(inputs(number=None, request=request("+33199999999")))
    assert (decision.status, decision.rule_ids) == (404, (RULE_UNKNOWN_NUMBER,))
    assert "+33199999999" in decision.notes[0]


def test_r1_unknown_number_goes_by_a_matching_static_route() -> None:
    table = StaticTable((TRUNK, PHONES), {"1001": ("sip:1001@10.0.0.2",)})
    to_trunk = route(inputs(number=None, request=request("0601020304"), static=table))
    assert (to_trunk.uris, to_trunk.rule_ids) == (("sip:127.0.0.1:5090",), (RULE_STATIC, "to-trunk"))
    to_phone = route(inputs(number=None, request=request("1001"), static=table))
    assert to_phone.uris == ("sip:1001@10.0.0.2",)
    assert to_phone.number is None


def test_r1_static_route_to_a_user_without_phone_keeps_its_480() -> None:
    table = StaticTable((PHONES,), {})
    decision = route(inputs(number=None, request=request("1002"), static=table))
    assert (decision.status, decision.rule_ids) == (480, (RULE_STATIC, "phones", "static.not_registered"))


def test_r1_unknown_number_no_static_route_matching_is_404() -> None:
    decision = route(inputs(number=None, request=request("+33199999999"), static=StaticTable((TRUNK,), {})))
    assert (decision.status, decision.rule_ids) == (404, (RULE_UNKNOWN_NUMBER, "static.no_match"))


def test_r1_a_known_number_never_falls_back_to_static_routes() -> None:
    catch_all = StaticTable((StaticRoute("all", re.compile(".*"), "sip:elsewhere.example"),), {})
    decision = route(inputs(static=catch_all, presence=Presence()))
    assert decision.status == 480
    assert "all" not in decision.rule_ids


def test_r1_without_crm_knowledge_the_queue_group_rings_and_the_decision_says_why() -> None:
    decision = route(inputs(ring_plan=None, crm_unavailable_reason="the CRM lookup ran past its 300 ms budget"))
    assert rung(decision.steps) == [(7,), (8,), (9,)]
    assert decision.rule_ids[:2] == ("R1", RULE_NO_CRM_KNOWLEDGE)
    assert "T7" not in decision.rule_ids
    assert any("300 ms budget" in note for note in decision.notes)


def test_r1_nobody_to_ring_is_480_with_notes_saying_why() -> None:
    decision = route(inputs(presence=Presence()))
    assert (decision.steps, decision.status) == ((), 480)
    assert decision.rule_ids[-1] == RULE_NOBODY_TO_RING
    assert {"R3.no_phone", "R2.nobody_available"} <= set(decision.rule_ids)
    for employee in (7, 8, 9):
        assert any(f"employee {employee}" in note and "no registered phone" in note for note in decision.notes)
    assert decision.number == NUMBER.e164


def test_r1_number_without_queue_group_rings_only_the_known_callers_responsible() -> None:
    number = replace(NUMBER, queue_group_id=None)
    decision = route(inputs(number=number, ring_plan=ring_for(CLIENT)))
    assert rung(decision.steps) == [(11,)]
    assert RULE_NO_QUEUE_GROUP in decision.rule_ids
    assert route(inputs(number=number)).status == 480


def test_r1_number_naming_a_missing_queue_group_is_480_and_names_the_group() -> None:
    decision = route(inputs(number=replace(NUMBER, queue_group_id=99)))
    assert decision.status == 480
    assert any("99" in note and "does not exist" in note for note in decision.notes)


def test_r1_t8_and_t9_change_what_the_crm_records_never_where_the_call_rings() -> None:
    plain = route(inputs(ring_plan=ring_for()))
    for special in (ring_for(is_employee=True), ring_for(is_exception=True)):
        assert route(inputs(ring_plan=special)).steps == plain.steps


def test_r1_chain_after_the_responsible_and_the_queue() -> None:
    chained = group(no_answer=NoAnswer.to_outside("+33700000000"))
    decision = route(inputs(chained, ring_plan=ring_for(CLIENT)))
    assert rung(decision.steps) == [(11,), (7,), (8,), (9,), (None,)]
