"""Queue groups: an ordered list of employees a number rings (SPEC T10: the first is responsible)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.admin.schemas.common import Name, Out, RowId, Strict

Strategy = Literal["sequential", "simultaneous"]
MemberIds = Annotated[list[RowId], Field(max_length=100, description="employee ids, in ringing order")]


class QueueGroupCreate(Strict):
    """A new queue group; `member_ids` order is the ringing order."""

    name: Name
    strategy: Strategy = "sequential"
    member_ids: MemberIds = []


class QueueGroupUpdate(Strict):
    """A partial change; `member_ids`, when given, replaces the members and their order."""

    name: Name | None = None
    strategy: Strategy | None = None
    member_ids: MemberIds | None = None


class QueueGroupOut(Out):
    """A queue group with its members in order."""

    id: int
    name: str
    strategy: str
    member_ids: list[int]
