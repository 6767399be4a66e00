"""Where a call may ring: typed targets and the ring steps a route is made of.

A route is a sequence of `RingStep`s. The targets of one step ring at once (a queue group set to ring
everybody, or the several phones of one employee); the next step starts when every target of the
step has failed or the step's ring time is over. The B2BUA turns a `Target` into INVITEs at the last
moment (an employee's phones are the contacts registered for their extension *then*), so a decision
never carries SIP URIs it would have to re-parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache


class TargetKind(StrEnum):
    """What a target is, which decides how the B2BUA reaches it."""

    EMPLOYEE = "employee"  # every phone registered for the employee's extension, at once
    PHONE = "phone"  # one registered contact (`uri`), e.g. from a static `registered` route
    TRUNK = "trunk"  # a trunk (`uri` is its host URI); the dialled number becomes the user part
    OUTSIDE = "outside"  # an outside number (`number`, E.164), leaving through a trunk (`uri`)
    URI = "uri"  # a SIP URI exactly as configured (static routes)


@dataclass(frozen=True, slots=True)
class Target:
    """One thing a call can ring. Build it with the class methods, which say what each kind needs."""

    kind: TargetKind
    uri: str = ""
    employee_id: int | None = None
    extension: str | None = None
    number: str | None = None
    trunk_id: int | None = None  # the trunk a TRUNK/OUTSIDE target leaves through (its credentials)
    caller_id: str | None = None  # SPEC R4: the From (and P-Asserted-Identity) user towards the trunk

    @classmethod
    def employee(cls, employee_id: int, extension: str) -> Target:
        return cls(TargetKind.EMPLOYEE, employee_id=employee_id, extension=extension)

    @classmethod
    def phone(cls, contact_uri: str, *, employee_id: int | None = None, extension: str | None = None) -> Target:
        return cls(TargetKind.PHONE, uri=contact_uri, employee_id=employee_id, extension=extension)

    @classmethod
    def trunk(cls, host_uri: str) -> Target:
        return cls(TargetKind.TRUNK, uri=host_uri)

    @classmethod
    def outside(
        cls, number: str, trunk_uri: str, *, trunk_id: int | None = None, caller_id: str | None = None
    ) -> Target:
        """`number` (E.164) through the trunk at `trunk_uri`, whose user part is the number as the trunk
        wants it written; `caller_id`, when set, replaces the caller's identity on that leg."""
        return cls(TargetKind.OUTSIDE, uri=trunk_uri, number=number, trunk_id=trunk_id, caller_id=caller_id)

    @classmethod
    def sip_uri(cls, uri: str) -> Target:
        return cls(TargetKind.URI, uri=uri)

    def describe(self) -> str:
        """A short human form for logs and explanations."""
        if self.kind is TargetKind.EMPLOYEE:
            return f"employee {self.employee_id} (extension {self.extension})"
        if self.kind is TargetKind.OUTSIDE:
            return f"outside number {self.number} via {self.uri}"
        return f"{self.kind.value} {self.uri}"


@dataclass(frozen=True, slots=True)
class RingStep:
    """Targets rung at once, for `ring_time` seconds (None: until each answers or fails, Timer C bounding).

    `rule_ids` names the rules that put this step in the route (e.g. ``("T7",)`` for the known caller's
    responsible, ``("R2", "R2.in_order")`` for a queue member).
    """

    targets: tuple[Target, ...]
    ring_time: float | None = None
    rule_ids: tuple[str, ...] = ()
    # `describe`'s text, kept once made: a queue member's step is shared by every call that rings them.
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def describe(self) -> str:
        """The step for logs and explanations: its targets, and for how long they ring."""
        if self._text is None:
            who = " + ".join(target.describe() for target in self.targets)
            text = f"{who} for {self.ring_time:g} s" if self.ring_time is not None else who
            object.__setattr__(self, "_text", text)
            return text
        return self._text


# Targets and steps are frozen, so the same employee, ring time and rules give one shared object:
# a queue group rings the same members call after call. Bounded: an admin edit leaves old keys behind.
@lru_cache(maxsize=4096, typed=True)
def shared_employee_target(employee_id: int, extension: str) -> Target:
    """`Target.employee(employee_id, extension)`, made once."""
    return Target.employee(employee_id, extension)


@lru_cache(maxsize=4096, typed=True)
def shared_employee_step(employee_id: int, extension: str, ring_time: float | None, rule_ids: tuple[str, ...]) -> RingStep:
    """A step ringing one employee, made once per (employee, extension, ring time, rules)."""
    return RingStep((shared_employee_target(employee_id, extension),), ring_time, rule_ids)
