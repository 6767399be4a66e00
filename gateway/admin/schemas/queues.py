"""Queue groups: the employees a number rings and how (SPEC R2), what happens when nobody answers (R3),
and who is responsible of new leads (T10: the member at position 1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from gateway.admin.schemas.common import Name, Out, RingTime, RowId, Strict

Strategy = Literal["in_order", "evenly", "everybody"]
# Accepted on input for operators' existing scripts; answered with a Warning header naming the new word.
DeprecatedStrategy = Literal["sequential", "simultaneous"]
DEPRECATED_STRATEGIES: dict[str, str] = {"sequential": "in_order", "simultaneous": "everybody"}
StrategyIn = Annotated[
    Strategy | DeprecatedStrategy,
    Field(description="R2: in_order (position 1 first), evenly (the member longest since their last offer) "
                      "or everybody (all at once); 'sequential'/'simultaneous' are deprecated names of "
                      "in_order/everybody"),
]
NoAnswerAction = Literal["hangup", "queue_group", "employee", "outside_number"]
OutsideNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32,
                                                 pattern=r"^\+[0-9 ().\-]+$"),
                          Field(description="international form (+country code)", examples=["+33 6 12 34 56 78"])]
MemberIds = Annotated[list[RowId], Field(max_length=100, description="employee ids, in ringing order")]


class MemberIn(Strict):
    """A member with an optional ring time of their own."""

    employee_id: RowId
    ring_time_s: RingTime | None = Field(default=None, description="null: the group's ring_time_s")


Members = Annotated[list[MemberIn], Field(max_length=100, description="members in ringing order")]


class _NoAnswerFields(Strict):
    no_answer_action: NoAnswerAction | None = Field(
        default=None, description="R3: what happens when no member answered; each action takes exactly its "
        "own target: queue_group -> no_answer_group_id, employee -> no_answer_employee_id, outside_number -> "
        "no_answer_number, hangup -> none. A chain of groups that loops is refused (409)")
    no_answer_group_id: RowId | None = None
    no_answer_employee_id: RowId | None = None
    no_answer_number: OutsideNumber | None = None


class QueueGroupCreate(_NoAnswerFields):
    """A new queue group; give the members either as `member_ids` (ids in ringing order) or as
    `members` (with a ring time per member), not both."""

    name: Name
    strategy: StrategyIn = "in_order"
    ring_time_s: RingTime = 20
    member_ids: MemberIds | None = None
    members: Members | None = None


class QueueGroupUpdate(_NoAnswerFields):
    """A partial change; `member_ids` or `members`, when given, replaces the members and their order.
    Changing `no_answer_action` clears the targets of the other actions."""

    name: Name | None = None
    strategy: StrategyIn | None = None
    ring_time_s: RingTime | None = None
    member_ids: MemberIds | None = None
    members: Members | None = None


class MemberOut(Out):
    """A member in ringing order; `position` 1 is the first (T10: responsible of new leads)."""

    employee_id: int
    position: int
    ring_time_s: int | None


class QueueGroupOut(Out):
    """A queue group with its members in order and its no-answer chain."""

    id: int
    name: str
    strategy: str
    ring_time_s: int
    member_ids: list[int]
    members: list[MemberOut]
    no_answer_action: str
    no_answer_group_id: int | None
    no_answer_employee_id: int | None
    no_answer_number: str | None
