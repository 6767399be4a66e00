"""Routing inputs for tests: one number (+33 1 42 68 53 00) whose queue group is group 10 (7, 8, 9).

The employees 1–12 have extension 10NN; every one of them has a registered phone and is free unless a
test says otherwise. Ring plans come from the real linking engine (`ring_for`), never written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from gateway.crm_bridge.linking import KnownItem, RingPlan, decide, ring_responsible
from gateway.routing import (
    EmployeeSpec,
    MemberSpec,
    NoAnswer,
    NumberSpec,
    Presence,
    QueueGroupSpec,
    RouteRequest,
    RoutingInputs,
    Strategy,
)
from gateway.trunks.model import CallerIdFormat, TrunkKind, TrunkSpec
from tests.crm_bridge.test_linking import QUEUE, call, known

GROUP_ID = 10
TRUNK = TrunkSpec(4, "provider", TrunkKind.PROVIDER, "sip.provider.example", caller_id_format=CallerIdFormat.NATIONAL)
NUMBER = NumberSpec(1, "+33142685300", "FR", GROUP_ID, responsible_ring_time=15.0, route_known_to_responsible=True,
                    trunk_id=TRUNK.id)
#: A client the CRM knows, whose responsible is employee 11 (outside the queue group).
CLIENT = (known("contact", 3, 11), known("deal", 20, 11))


def extension(employee_id: int) -> str:
    return f"10{employee_id:02d}"


EMPLOYEES = {i: EmployeeSpec(i, extension(i)) for i in range(1, 13)}
EVERYONE_FREE = Presence(registered=frozenset(extension(i) for i in EMPLOYEES))


def request(request_user: str | None = "+33142685300", to_user: str | None = None, **fields: Any) -> RouteRequest:
    base = RouteRequest(
        call_id="abc@host",
        request_user=request_user,
        to_user=to_user,
        caller_uri="sip:+33612345678@trunk.example",
        caller_user="+33612345678",
        caller_display=None,
        asserted=None,
        privacy=None,
        source=("udp", "192.0.2.1", 5060),
        trusted=True,
        authenticated_user=None,
        at=0.0,
    )
    return replace(base, **fields)


def group(
    group_id: int = GROUP_ID,
    members: Iterable[int] = QUEUE,
    strategy: Strategy = Strategy.IN_ORDER,
    *,
    ring_time: float = 20.0,
    no_answer: NoAnswer | None = None,
    ring_times: Mapping[int, float] | None = None,
) -> QueueGroupSpec:
    """Members at positions 1, 2, … in the order given; `ring_times` overrides a member's ring time."""
    specs = tuple(MemberSpec(e, position, (ring_times or {}).get(e)) for position, e in enumerate(members, 1))
    return QueueGroupSpec(group_id, f"group {group_id}", strategy, ring_time, specs, no_answer or NoAnswer.hangup())


def ring_for(items: tuple[KnownItem, ...] = (), **settings: Any) -> RingPlan:
    """The linking engine's ring plan for a call to the number (queue 7, 8, 9) from a party with `items`."""
    settings.setdefault("route_known_to_responsible", NUMBER.route_known_to_responsible)
    interaction = call(items=items, **settings)
    return ring_responsible(interaction, decide(interaction), ring_timeout=NUMBER.responsible_ring_time)


NEW_CALLER = ring_for()


def inputs(
    *groups: QueueGroupSpec,
    ring_plan: RingPlan | None = NEW_CALLER,
    presence: Presence = EVERYONE_FREE,
    **fields: Any,
) -> RoutingInputs:
    """A call to NUMBER; `groups` default to group 10 ringing 7, 8, 9 in order."""
    table = {g.id: g for g in (groups or (group(),))}
    fields.setdefault("request", request())
    fields.setdefault("number", NUMBER)
    fields.setdefault("employees", EMPLOYEES)
    fields.setdefault("trunks", {TRUNK.id: TRUNK})
    return RoutingInputs(ring_plan=ring_plan, groups=table, presence=presence, **fields)


def without_phone(*employee_ids: int) -> Presence:
    return replace(EVERYONE_FREE, registered=EVERYONE_FREE.registered - {extension(e) for e in employee_ids})


def busy(*employee_ids: int) -> Presence:
    return replace(EVERYONE_FREE, busy=frozenset(employee_ids))


def rung(decision_steps: Iterable[Any]) -> list[tuple[int | None, ...]]:
    """Each step as the employee ids it rings (None for a target that is not an employee)."""
    return [tuple(target.employee_id for target in step.targets) for step in decision_steps]
