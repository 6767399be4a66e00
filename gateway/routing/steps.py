"""`route`: an ordered list of named pure steps from the call's inputs to a `RouteDecision` (SPEC R1).

Each step takes the inputs and the draft so far, and returns a new draft or, when the call's fate is
settled, the final decision. Step order (rule ids in brackets):

1. screen                       [R1.no_dialled_number] an INVITE that names no number at all → 404.
2. identify_number              [R1] the dialled number is one of ours; [R1.unknown_number] it is not
                                and there is no static table → 404.
3. known_caller_to_responsible  [T7] the linking engine's ring plan names the known caller's
                                responsible: they ring alone for the number's ring time, unless busy,
                                without a registered phone or inactive [R3.*]; [R1.no_crm_knowledge]
                                no CRM answer in time: the queue group takes the call.
4. queue_group                  [R2, R2.<strategy>] the number's queue group, members skipped as R3 says.
5. no_answer_chain              [R3.no_answer.*] what the group does when nobody answers, group after group.
6. static_fallback              the configuration file's static routes, for a dialled user that is none
                                of the numbers [R1.static, then the route's own id].

Routing consumes the CRM's ring plan as decided by the linking engine; it never re-derives a CRM rule.
T8/T9 change what the CRM records, never where a call rings. With nobody to ring → 480
[R1.nobody_to_ring], the notes saying why.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.routing import queues
from gateway.routing.decision import RouteDecision
from gateway.routing.draft import Draft
from gateway.routing.model import QueueGroupSpec, RoutingInputs
from gateway.routing.static import RULE_NO_MATCH, RULE_NO_USER, decide
from gateway.routing.targets import RingStep

Step = Callable[[RoutingInputs, Draft], Draft | RouteDecision]

RULE_NUMBER = "R1"
RULE_NO_DIALLED_NUMBER = "R1.no_dialled_number"
RULE_UNKNOWN_NUMBER = "R1.unknown_number"
RULE_NO_CRM_KNOWLEDGE = "R1.no_crm_knowledge"
RULE_NO_QUEUE_GROUP = "R1.no_queue_group"
RULE_NOBODY_TO_RING = "R1.nobody_to_ring"
RULE_STATIC = "R1.static"
RULE_T7 = "T7"


def _dialled(inputs: RoutingInputs) -> str | None:
    return inputs.request.request_user or inputs.request.to_user


def screen(inputs: RoutingInputs, draft: Draft) -> Draft | RouteDecision:
    """Refuse what cannot be routed at all; T8/T9 callers are routed like anyone (SPEC R1)."""
    if not _dialled(inputs):
        return RouteDecision((), 404, (RULE_NO_DIALLED_NUMBER,),
                             ("neither the Request-URI nor To names a number to call",))
    return draft


def identify_number(inputs: RoutingInputs, draft: Draft) -> Draft | RouteDecision:
    """The call is to one of the numbers (R1), or to something only static routes may know."""
    if inputs.number is not None:
        return draft.add(rule_ids=(RULE_NUMBER,))
    if not inputs.static.routes:
        return RouteDecision((), 404, (RULE_UNKNOWN_NUMBER,), (_unknown_note(inputs),))
    return draft


def _unknown_note(inputs: RoutingInputs) -> str:
    return f"{_dialled(inputs)!r} is none of the gateway's numbers"


def known_caller_to_responsible(inputs: RoutingInputs, draft: Draft) -> Draft | RouteDecision:
    """T7 as the linking engine planned it: the known caller's responsible rings first, alone."""
    number, plan = inputs.number, inputs.ring_plan
    if number is None:
        return draft
    if plan is None:
        reason = inputs.crm_unavailable_reason or "the CRM lookup gave no answer"
        return draft.add(rule_ids=(RULE_NO_CRM_KNOWLEDGE,),
                         notes=(f"no CRM knowledge of the caller ({reason}): the number's queue group takes the call",))
    if plan.responsible_id is None:
        if RULE_T7 not in plan.rule_ids:
            return draft
        return draft.add(rule_ids=(RULE_T7,), notes=plan.notes)
    responsible = plan.responsible_id
    unavailable = queues.unavailable(responsible, inputs)
    if unavailable is not None:
        note = queues.skip_note("the known caller's responsible", responsible, unavailable[1])
        return draft.add(rule_ids=(RULE_T7, unavailable[0]), notes=(*plan.notes, note))
    ring_time = plan.ring_timeout if plan.ring_timeout is not None else number.responsible_ring_time
    step = RingStep((queues.employee_target(responsible, inputs),), ring_time, (RULE_T7,))
    return draft.add(steps=(step,), rule_ids=(RULE_T7,), notes=plan.notes)


def _number_group(inputs: RoutingInputs) -> QueueGroupSpec | None:
    number = inputs.number
    if number is None or number.queue_group_id is None:
        return None
    return inputs.groups.get(number.queue_group_id)


def queue_group(inputs: RoutingInputs, draft: Draft) -> Draft | RouteDecision:
    """The number's queue group rings its members by its strategy (R2), skipping as R3 says."""
    number = inputs.number
    if number is None:
        return draft
    group = _number_group(inputs)
    if group is None:
        missing = ("has no queue group" if number.queue_group_id is None
                   else f"names queue group {number.queue_group_id}, which does not exist")
        return draft.add(rule_ids=(RULE_NO_QUEUE_GROUP,), notes=(f"number {number.e164} {missing}",))
    return queues.group_steps(draft, group, inputs)


def no_answer_chain(inputs: RoutingInputs, draft: Draft) -> Draft | RouteDecision:
    """When nobody of the number's group answers: another group, an employee, an outside number or hang up."""
    group = _number_group(inputs)
    if group is None:
        return draft
    return queues.follow_no_answer_chain(draft, group, inputs)


def static_fallback(inputs: RoutingInputs, draft: Draft) -> Draft | RouteDecision:
    """A dialled user that is none of the numbers goes by the configuration file's static routes."""
    if inputs.number is not None:
        return draft
    static = decide(inputs.request.request_user, inputs.static.routes, inputs.static.bindings)
    if static.rule_ids in ((RULE_NO_MATCH,), (RULE_NO_USER,)):
        return RouteDecision((), 404, (RULE_UNKNOWN_NUMBER, *static.rule_ids),
                             (*draft.notes, _unknown_note(inputs), "no static route matches it"))
    return RouteDecision(static.steps, static.status, (RULE_STATIC, *static.rule_ids), draft.notes)


STEPS: tuple[Step, ...] = (
    screen,
    identify_number,
    known_caller_to_responsible,
    queue_group,
    no_answer_chain,
    static_fallback,
)


def route(inputs: RoutingInputs) -> RouteDecision:
    """Where the call of `inputs` rings, with the rule ids and notes that explain it (SPEC R1–R3, C1)."""
    draft = Draft()
    for step in STEPS:
        outcome = step(inputs, draft)
        if isinstance(outcome, RouteDecision):
            return outcome
        draft = outcome
    return _finish(inputs, draft)


def _finish(inputs: RoutingInputs, draft: Draft) -> RouteDecision:
    number = inputs.number.e164 if inputs.number is not None else None
    if draft.steps:
        return RouteDecision(draft.steps, None, draft.rule_ids, draft.notes, number)
    # RFC 3261 §21.4.18: the number exists, but nobody can take the call right now.
    return RouteDecision((), 480, (*draft.rule_ids, RULE_NOBODY_TO_RING),
                         (*draft.notes, "nobody can take the call now"), number)
