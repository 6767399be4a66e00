"""Sentences for a routing decision's rule ids, for the call log and the call's page (SPEC C1, R7).

Named `explanation`, not `explain`: a submodule `explain` would replace the package's `explain` function.
"""

from __future__ import annotations

from gateway.routing import numbers, outbound, queues, steps
from gateway.routing.decision import RouteDecision, explain
from gateway.routing.static import RULE_NO_MATCH, RULE_NO_USER, RULE_NOT_REGISTERED
from gateway.routing.targets import TargetKind

RULE_TEXTS: dict[str, str] = {
    steps.RULE_NUMBER: "the call is to one of the gateway's numbers",
    steps.RULE_NO_DIALLED_NUMBER: "the INVITE names no number to call",
    steps.RULE_UNKNOWN_NUMBER: "the number dialled is none of the gateway's numbers",
    steps.RULE_NO_CRM_KNOWLEDGE: "the CRM gave no answer in time, so the number's queue group takes the call "
                                 "without looking for the caller's responsible",
    steps.RULE_NO_QUEUE_GROUP: "the number has no queue group to ring",
    steps.RULE_NOBODY_TO_RING: "nobody can take the call now",
    steps.RULE_STATIC: "the configuration file's static routes apply",
    steps.RULE_T7: "a known caller rings their responsible employee first, alone",
    queues.RULE_R2: "the queue group rings its members",
    "R2.in_order": "in order, position 1 first, each member for their ring time",
    "R2.evenly": "evenly: the member longest since their last offer first, each for their ring time",
    "R2.everybody": "everybody at once, for the group's ring time",
    queues.RULE_ALREADY_RUNG: "an employee an earlier step rings already is not rung again",
    queues.RULE_NOBODY_IN_GROUP: "a queue group had nobody to ring",
    queues.RULE_BUSY: "an employee already on a call is skipped",
    queues.RULE_NO_PHONE: "an employee with no registered phone is skipped",
    queues.RULE_NO_EXTENSION: "an employee with no extension is skipped",
    queues.RULE_INACTIVE: "a deactivated employee is never rung",
    queues.RULE_UNKNOWN_EMPLOYEE: "an employee id that names nobody is skipped",
    "R3.no_answer.queue_group": "when nobody answers, the call passes to another queue group",
    "R3.no_answer.employee": "when nobody answers, the call rings one more employee",
    "R3.no_answer.outside_number": "when nobody answers, the call goes to an outside number",
    "R3.no_answer.hangup": "when nobody answers, the call ends",
    queues.RULE_CHAIN_LOOP: "the no-answer chain comes back to a group it passed, so it stops there",
    queues.RULE_CHAIN_MISSING_GROUP: "the no-answer chain names a queue group that does not exist",
    queues.RULE_NO_TRUNK: "the number has no trunk, so the no-answer chain cannot reach an outside number",
    outbound.RULE_OUTBOUND: "an employee's call to an outside number leaves through the trunk of their outbound "
                            "number, with that number as caller ID",
    outbound.RULE_EMPLOYEE_NUMBER: "the employee's own outbound number is used",
    outbound.RULE_DEFAULT_NUMBER: "the employee has no outbound number of their own, so the default one is used",
    outbound.RULE_NO_OUTBOUND_NUMBER: "the employee has no outbound number and there is no default outbound number",
    outbound.RULE_NO_TRUNK: "the outbound number has no trunk to leave through",
    outbound.RULE_DENIED: "the number dialled matches a deny pattern of the trunk (emergency or premium numbers)",
    outbound.RULE_NOT_A_NUMBER: "what was dialled is not a phone number",
    RULE_NO_MATCH: "no static route matches the dialled user",
    RULE_NO_USER: "the Request-URI has no user to route",
    RULE_NOT_REGISTERED: "the static route's user has no registered phone",
    numbers.RULE_FROM: "the caller is the number in From",
    numbers.RULE_ANONYMOUS: "From is anonymous",
    numbers.RULE_ASSERTED: "the trusted source's P-Asserted-Identity gives the caller's number",
    numbers.RULE_UNTRUSTED_ASSERTED: "a P-Asserted-Identity from an untrusted source is ignored",
    numbers.RULE_PRIVACY_ID: "the caller asked for privacy (Privacy: id): their number is withheld",
    numbers.RULE_UNPARSEABLE: "the caller's number is not a phone number",
}


def explain_rule(rule_id: str) -> str:
    """One sentence for `rule_id`; an id routing does not know is a static route's own (from the config)."""
    return RULE_TEXTS.get(rule_id, f"static route {rule_id!r} matched the dialled user")


#: Ring steps a call log's explanation names; the rest are counted (who was actually rung is the call's
#: offered list). Every call stores its explanation, and a hundred-member queue group's was 5 KB.
STEPS_EXPLAINED = 5


def explain_lines(decision: RouteDecision) -> list[str]:
    """The outcome (its first `STEPS_EXPLAINED` steps), then one sentence per rule id (first to last),
    then each note."""
    lines = [explain(decision, steps_shown=STEPS_EXPLAINED)]
    if decision.number is not None:
        lines.append(f"number: {decision.number}")
    lines.extend(f"{rule_id}: {_sentence(rule_id, decision)}" for rule_id in decision.rule_ids)
    lines.extend(f"note: {note}" for note in decision.notes)
    return lines


def _sentence(rule_id: str, decision: RouteDecision) -> str:
    text = explain_rule(rule_id)
    if rule_id != steps.RULE_T7:
        return text
    first = next((step for step in decision.steps if steps.RULE_T7 in step.rule_ids), None)
    if first is None or first.targets[0].kind is not TargetKind.EMPLOYEE:
        return "a known caller's responsible employee is not rung"
    ring_time = f" for {first.ring_time:g} s" if first.ring_time is not None else ""
    return f"the known caller rings their responsible, employee {first.targets[0].employee_id}, alone{ring_time}"
