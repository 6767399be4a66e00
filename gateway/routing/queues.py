"""SPEC R2/R3: the ring steps of a queue group, who is skipped, and the no-answer chain.

Rule ids (each step of a route names the rules that put it there; the decision names them all):

- ``R2.in_order`` / ``R2.evenly`` / ``R2.everybody``: the group's strategy rang its members.
- ``R3.busy``, ``R3.no_phone``, ``R3.no_extension``, ``R3.inactive``, ``R3.unknown_employee``: an
  employee was skipped (already on a call, no registered phone, no extension, deactivated, unknown).
- ``R2.already_rung``: a member some earlier step rings already (the responsible, or a member of an
  earlier group of the chain) is not rung again.
- ``R3.no_answer.queue_group|employee|outside_number|hangup``: the group's no-answer chain.
- ``R3.no_trunk``: a no-answer chain to an outside number when the number has no trunk to leave through.
- ``R3.chain_loop``: the chain came back to a group it had passed (refused at configuration; the run-time
  guard ends the chain there), ``R3.chain_missing_group``: the chain names a group that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.crm_bridge.identity import normalize_phone
from gateway.routing.chain import find_chain_loop
from gateway.routing.draft import Draft
from gateway.routing.model import (
    EmployeeSpec,
    MemberSpec,
    NoAnswerKind,
    QueueGroupSpec,
    RoutingInputs,
    Strategy,
)
from gateway.routing.outbound import format_number
from gateway.routing.targets import RingStep, Target, shared_employee_step, shared_employee_target

RULE_R2 = "R2"
RULE_BUSY = "R3.busy"
RULE_NO_PHONE = "R3.no_phone"
RULE_NO_EXTENSION = "R3.no_extension"
RULE_INACTIVE = "R3.inactive"
RULE_UNKNOWN_EMPLOYEE = "R3.unknown_employee"
RULE_ALREADY_RUNG = "R2.already_rung"
RULE_CHAIN_LOOP = "R3.chain_loop"
RULE_CHAIN_MISSING_GROUP = "R3.chain_missing_group"
RULE_NOBODY_IN_GROUP = "R2.nobody_available"
RULE_NO_TRUNK = "R3.no_trunk"


def strategy_rule(strategy: Strategy) -> str:
    return f"R2.{strategy.value}"


def no_answer_rule(kind: NoAnswerKind) -> str:
    return f"R3.no_answer.{kind.value}"


def ringable(employee_id: int, inputs: RoutingInputs) -> str | tuple[str, str]:
    """The extension that rings `employee_id` now, or (rule id, why) when they cannot be rung (SPEC R3)."""
    employee = inputs.employees.get(employee_id)
    if employee is None:
        return RULE_UNKNOWN_EMPLOYEE, "is not a known employee"
    extension = employee.extension
    if not employee.active:
        return RULE_INACTIVE, "is inactive"
    if not extension:
        return RULE_NO_EXTENSION, "has no extension"
    presence = inputs.presence
    if extension not in presence.registered:
        return RULE_NO_PHONE, "has no registered phone"
    if employee_id in presence.busy:
        return RULE_BUSY, "is already on a call"
    return extension


def unavailable(employee_id: int, inputs: RoutingInputs) -> tuple[str, str] | None:
    """(rule id, why) when `employee_id` cannot be rung now (SPEC R3), None when they can."""
    outcome = ringable(employee_id, inputs)
    return None if isinstance(outcome, str) else outcome


def employee_target(employee_id: int, inputs: RoutingInputs) -> Target:
    """The target of an employee `unavailable` accepted (so they have an extension)."""
    employee: EmployeeSpec = inputs.employees[employee_id]
    assert employee.extension is not None
    return shared_employee_target(employee_id, employee.extension)


def skip_note(who: str, employee_id: int, why: str) -> str:
    return f"{who}, employee {employee_id}, {why}: skipped"


def ring_order(group: QueueGroupSpec, last_offer: Mapping[int, float] | None = None) -> tuple[MemberSpec, ...]:
    """The group's members in the order its strategy offers the call (before anyone is skipped).

    Evenly: never offered first, then the longest since their last offer; ties go by position.
    """
    members = group.by_position
    if group.strategy is not Strategy.EVENLY or not last_offer:
        return members
    offers = last_offer
    never = [member for member in members if member.employee_id not in offers]
    offered = [member for member in members if member.employee_id in offers]
    # The sort is stable: members offered at the same time keep their position order.
    offered.sort(key=lambda member: offers[member.employee_id])
    return (*never, *offered)


def group_steps(draft: Draft, group: QueueGroupSpec, inputs: RoutingInputs, via: tuple[str, ...] = ()) -> Draft:
    """`draft` with the ring steps of `group` appended; `via` are rule ids that led to this group."""
    rules = (*via, RULE_R2, strategy_rule(group.strategy))
    who = f"queue group {group.name!r} (id {group.id}): member"
    already = draft.rung
    ringing: list[tuple[MemberSpec, str]] = []  # with the extension that rings them
    skip_rules: list[str] = []
    notes: list[str] = []
    for member in ring_order(group, inputs.last_offer):
        if member.employee_id in already:
            skip_rules.append(RULE_ALREADY_RUNG)
            notes.append(skip_note(who, member.employee_id, "is rung already by an earlier step"))
            continue
        outcome = ringable(member.employee_id, inputs)
        if isinstance(outcome, tuple):
            skip_rules.append(outcome[0])
            notes.append(skip_note(who, member.employee_id, outcome[1]))
            continue
        ringing.append((member, outcome))
    if not ringing:
        skip_rules.append(RULE_NOBODY_IN_GROUP)
        notes.append(f"queue group {group.name!r} (id {group.id}) has nobody to ring now")
    steps = _steps_of(group, ringing, rules)
    return draft.add(steps=steps, rule_ids=(*rules, *skip_rules), notes=tuple(notes))


def _steps_of(group: QueueGroupSpec, ringing: list[tuple[MemberSpec, str]], rules: tuple[str, ...]) -> tuple[RingStep, ...]:
    if not ringing:
        return ()
    if group.strategy is Strategy.EVERYBODY:
        # SPEC R2: everybody rings at once for the group's ring time; a member's own ring time is for
        # the one-at-a-time strategies.
        targets = tuple(shared_employee_target(member.employee_id, extension) for member, extension in ringing)
        return (RingStep(targets, group.ring_time, rules),)
    ring_time = group.ring_time
    return tuple(
        shared_employee_step(member.employee_id, extension,
                             member.ring_time if member.ring_time is not None else ring_time, rules)
        for member, extension in ringing
    )


def _chain_to_outside(draft: Draft, dialled: str, rule: str, inputs: RoutingInputs) -> Draft:
    """The call is forwarded out through the trunk of the number it came in on, with that number as
    caller ID (providers refuse a caller ID that is not theirs)."""
    number = inputs.number
    trunk = inputs.trunks.get(number.trunk_id) if number is not None and number.trunk_id is not None else None
    if number is None or trunk is None or not trunk.enabled:
        return draft.add(rule_ids=(rule, RULE_NO_TRUNK),
                         notes=(f"the no-answer chain's outside number {dialled!r} has no trunk to leave through",))
    e164 = normalize_phone(dialled, number.default_region) or dialled
    form, region = trunk.caller_id_format, number.default_region
    target = Target.outside(e164, trunk.uri(format_number(e164, form, region)), trunk_id=trunk.id,
                            caller_id=format_number(number.e164, form, region))
    return draft.add(steps=(RingStep((target,), None, (rule,)),), rule_ids=(rule,))


def follow_no_answer_chain(draft: Draft, start: QueueGroupSpec, inputs: RoutingInputs) -> Draft:
    """`draft` with what `start`'s no-answer chain rings appended, group after group (SPEC R3).

    A loop is refused when the groups are configured; should one reach routing all the same (a table
    edited behind the API's back), the chain stops at the first group it would pass twice.
    """
    visited = [start.id]
    group = start
    while True:
        no_answer = group.no_answer
        rule = no_answer_rule(no_answer.kind)
        if no_answer.kind is NoAnswerKind.HANGUP:
            return draft.add(rule_ids=(rule,), notes=(f"queue group {group.name!r}: nobody answers → hang up",))
        if no_answer.kind is NoAnswerKind.EMPLOYEE:
            assert no_answer.employee_id is not None
            return _chain_to_employee(draft, group, no_answer.employee_id, inputs)
        if no_answer.kind is NoAnswerKind.OUTSIDE_NUMBER:
            assert no_answer.number is not None
            return _chain_to_outside(draft, no_answer.number, rule, inputs)
        assert no_answer.group_id is not None
        following = _next_group(group, no_answer.group_id, visited, inputs)
        if isinstance(following, tuple):
            rule_id, note = following
            return draft.add(rule_ids=(rule, rule_id), notes=(note,))
        draft = group_steps(draft, following, inputs, via=(rule,))
        visited.append(following.id)
        group = following


def _next_group(
    group: QueueGroupSpec, next_id: int, visited: list[int], inputs: RoutingInputs
) -> QueueGroupSpec | tuple[str, str]:
    """The group the chain passes the call to, or (rule id, note) when the chain must stop there."""
    if next_id in visited:
        chain = {gid: spec.no_answer.next_group for gid, spec in inputs.groups.items()}
        loop = find_chain_loop(visited[0], chain) or (*visited, next_id)
        path = " → ".join(map(str, loop))
        return RULE_CHAIN_LOOP, f"the no-answer chain loops ({path}): it stops before queue group {next_id} again"
    following = inputs.groups.get(next_id)
    if following is None:
        return RULE_CHAIN_MISSING_GROUP, (f"queue group {group.name!r} passes unanswered calls to queue group "
                                          f"{next_id}, which does not exist")
    return following


def _chain_to_employee(draft: Draft, group: QueueGroupSpec, employee_id: int, inputs: RoutingInputs) -> Draft:
    rule = no_answer_rule(NoAnswerKind.EMPLOYEE)
    who = f"queue group {group.name!r}'s no-answer employee"
    if employee_id in draft.rung:
        return draft.add(rule_ids=(rule, RULE_ALREADY_RUNG),
                         notes=(skip_note(who, employee_id, "is rung already by an earlier step"),))
    reason = unavailable(employee_id, inputs)
    if reason is not None:
        return draft.add(rule_ids=(rule, reason[0]), notes=(skip_note(who, employee_id, reason[1]),))
    # The no-answer employee rings for the ring time of the group whose chain it ends.
    step = RingStep((employee_target(employee_id, inputs),), group.ring_time, (rule,))
    return draft.add(steps=(step,), rule_ids=(rule,))
