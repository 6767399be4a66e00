"""SPEC C1/R7: a routing decision reads as sentences, one per rule id, then its notes."""

from __future__ import annotations

from gateway.routing import NoAnswer, RouteDecision, explain_lines, route
from gateway.routing.decision import explain
from gateway.routing.explanation import STEPS_EXPLAINED, explain_rule
from tests.routing.builders import CLIENT, NUMBER, busy, group, inputs, ring_for


def test_r1_explain_lines_give_the_outcome_the_number_a_sentence_per_rule_and_every_note() -> None:
    decision = route(inputs(group(no_answer=NoAnswer.to_employee(5)), ring_plan=ring_for(CLIENT), presence=busy(8)))
    lines = explain_lines(decision)
    assert lines[0].startswith("ring employee 11")
    assert lines[1] == f"number: {NUMBER.e164}"
    rule_lines = lines[2:2 + len(decision.rule_ids)]
    assert [line.split(":", 1)[0] for line in rule_lines] == list(decision.rule_ids)
    assert "R3.busy: an employee already on a call is skipped" in rule_lines
    assert lines[2 + len(decision.rule_ids):] == [f"note: {note}" for note in decision.notes]


def test_r1_a_rejected_call_explains_why_nobody_rings() -> None:
    lines = explain_lines(route(inputs(ring_plan=None, crm_unavailable_reason="database unreachable", presence=busy(7, 8, 9))))
    assert lines[0].startswith("reject 480")
    assert "R1.no_crm_knowledge" in lines[0]
    assert "R1.nobody_to_ring: nobody can take the call now" in lines
    assert any("database unreachable" in line for line in lines)


def test_r1_a_static_routes_own_id_is_named_as_such() -> None:
    assert explain_rule("to-trunk") == "static route 'to-trunk' matched the dialled user"
    lines = explain_lines(RouteDecision((), 404, ("R1.unknown_number", "static.no_match")))
    assert lines[1:] == ["R1.unknown_number: the number dialled is none of the gateway's numbers",
                         "static.no_match: no static route matches the dialled user"]


def test_r7_a_long_ring_plan_names_its_first_steps_and_counts_the_rest() -> None:
    """Every call stores its explanation: a queue group of many members must not make it KBs long."""
    members = tuple(range(1, STEPS_EXPLAINED + 8))  # every employee the builders know
    decision = route(inputs(group(members=members), ring_plan=None))
    assert len(decision.steps) == len(members)
    outcome = explain_lines(decision)[0]
    assert outcome.count(", then ") == STEPS_EXPLAINED
    assert f"employee {members[STEPS_EXPLAINED - 1]} " in outcome and f"employee {members[STEPS_EXPLAINED]} " not in outcome
    assert ", then 7 more steps (rules: " in outcome
    assert explain(decision).count(", then ") == len(members) - 1  # the decision's own line still names all
