"""What routing reads: the number dialled, its queue groups, the employees and their phones right now.

Everything here is plain frozen data the async router gathers before calling `route` (one database
query per call, presence from the registrar and the live calls); routing itself does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.config import StaticRoute
from gateway.crm_bridge.linking.ringing import RingPlan
from gateway.routing.request import RouteRequest
from gateway.trunks.model import TrunkSpec

#: SPEC R1's default for how long a known caller's responsible rings alone.
DEFAULT_RESPONSIBLE_RING_TIME = 20.0


def _check_ring_time(value: float, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive number of seconds; got {value!r}")


@dataclass(frozen=True, slots=True)
class EmployeeSpec:
    """An employee as routing sees them: their extension is the SIP user their phones register as."""

    id: int
    extension: str | None
    active: bool = True
    outbound_number_id: int | None = None  # SPEC R4: the number their outside calls leave from


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One member of a queue group; `ring_time` None rings them for the group's ring time."""

    employee_id: int
    position: int
    ring_time: float | None = None

    def __post_init__(self) -> None:
        if self.ring_time is not None:
            _check_ring_time(self.ring_time, f"the ring time of member {self.employee_id}")


class Strategy(StrEnum):
    """SPEC R2: how a queue group rings its members."""

    IN_ORDER = "in_order"  # position 1 first, one member at a time
    EVENLY = "evenly"  # the member longest since their last offer first, one at a time
    EVERYBODY = "everybody"  # all members at once

    @classmethod
    def from_stored(cls, value: str) -> Strategy:
        """`value` as stored or configured, accepting the names used before R2 (sequential, simultaneous)."""
        legacy = {"sequential": cls.IN_ORDER, "simultaneous": cls.EVERYBODY}
        if value in legacy:
            return legacy[value]
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown queue strategy {value!r}; expected one of {names}") from None


class NoAnswerKind(StrEnum):
    """SPEC R3: what happens when nobody of a queue group answers."""

    HANGUP = "hangup"
    QUEUE_GROUP = "queue_group"
    EMPLOYEE = "employee"
    OUTSIDE_NUMBER = "outside_number"


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """A queue group's no-answer chain; the field its `kind` needs is set, the others are None."""

    kind: NoAnswerKind = NoAnswerKind.HANGUP
    group_id: int | None = None
    employee_id: int | None = None
    number: str | None = None

    def __post_init__(self) -> None:
        needed = {
            NoAnswerKind.QUEUE_GROUP: ("group_id", self.group_id),
            NoAnswerKind.EMPLOYEE: ("employee_id", self.employee_id),
            NoAnswerKind.OUTSIDE_NUMBER: ("number", self.number),
        }.get(self.kind)
        if needed is not None and needed[1] in (None, ""):
            raise ValueError(f"a no-answer chain to {self.kind.value} needs {needed[0]}")

    @classmethod
    def hangup(cls) -> NoAnswer:
        return cls(NoAnswerKind.HANGUP)

    @classmethod
    def to_group(cls, group_id: int) -> NoAnswer:
        return cls(NoAnswerKind.QUEUE_GROUP, group_id=group_id)

    @classmethod
    def to_employee(cls, employee_id: int) -> NoAnswer:
        return cls(NoAnswerKind.EMPLOYEE, employee_id=employee_id)

    @classmethod
    def to_outside(cls, number: str) -> NoAnswer:
        return cls(NoAnswerKind.OUTSIDE_NUMBER, number=number)

    @property
    def next_group(self) -> int | None:
        """The queue group this chain passes the call to, if any (the input of `find_chain_loop`)."""
        return self.group_id if self.kind is NoAnswerKind.QUEUE_GROUP else None


@dataclass(frozen=True, slots=True)
class QueueGroupSpec:
    """A queue group: its members, how they ring (R2) and what happens when nobody answers (R3)."""

    id: int
    name: str
    strategy: Strategy
    ring_time: float
    members: tuple[MemberSpec, ...]
    no_answer: NoAnswer = field(default_factory=NoAnswer.hangup)
    # Sorted once: every call to the group reads the order.
    _by_position: tuple[MemberSpec, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_ring_time(self.ring_time, f"the ring time of queue group {self.id}")
        ids = [member.employee_id for member in self.members]
        if len(set(ids)) != len(ids):
            raise ValueError(f"queue group {self.id} lists an employee twice: {ids}")
        ordered = tuple(sorted(self.members, key=lambda member: (member.position, member.employee_id)))
        object.__setattr__(self, "_by_position", ordered)

    @property
    def by_position(self) -> tuple[MemberSpec, ...]:
        """Members in position order (T10's "first member" is position 1)."""
        return self._by_position


@dataclass(frozen=True, slots=True)
class NumberSpec:
    """One of the gateway's numbers as routing needs it (SPEC R1, T7)."""

    id: int
    e164: str
    default_region: str
    queue_group_id: int | None
    responsible_ring_time: float = DEFAULT_RESPONSIBLE_RING_TIME
    route_known_to_responsible: bool = False
    trunk_id: int | None = None  # the trunk that delivers it (SPEC T1) and carries its outbound calls (R4)

    def __post_init__(self) -> None:
        _check_ring_time(self.responsible_ring_time, f"the responsible ring time of number {self.e164}")


@dataclass(frozen=True, slots=True)
class Presence:
    """Who can take a call right now: extensions with a registered phone, employees already on a call.

    `registered` only needs `in`: the live router passes the registrar's set of live users, made again
    only when a binding changes or expires.
    """

    registered: Container[str] = frozenset()
    busy: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class StaticTable:
    """The configuration file's static routes and the registrar's bindings (user → contacts)."""

    routes: Sequence[StaticRoute] = ()
    bindings: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutingInputs:
    """Everything one routing decision depends on.

    `number`: the gateway number dialled (None: the dialled user is none of them). `ring_plan`: the
    linking engine's T7 ring plan for this call; None when routing has no CRM knowledge (the lookup ran
    past its budget, the database is down), and `crm_unavailable_reason` then says why. `last_offer`:
    employee id → when they were last offered a call (R2 evenly; an unanswered offer counts).
    """

    request: RouteRequest
    number: NumberSpec | None
    ring_plan: RingPlan | None
    employees: Mapping[int, EmployeeSpec] = field(default_factory=dict)
    groups: Mapping[int, QueueGroupSpec] = field(default_factory=dict)
    presence: Presence = field(default_factory=Presence)
    last_offer: Mapping[int, float] = field(default_factory=dict)
    static: StaticTable = field(default_factory=StaticTable)
    crm_unavailable_reason: str | None = None
    trunks: Mapping[int, TrunkSpec] = field(default_factory=dict)  # by id: where outside numbers leave
