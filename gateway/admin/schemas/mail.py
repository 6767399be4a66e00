"""Mail on CRM items: recipient candidates (O3/O4), sending (O1-O6), an item's mail (M7), completing
(M10), following up (M10) and moving (M9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from gateway.admin.schemas.common import Out, RowId, Strict

Recipient = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=400)]
Subject = Annotated[str, StringConstraints(max_length=998)]


class CandidateOut(Out):
    """A record offered as a recipient; a hidden client (O4) shows only as "Hidden contact/company"."""

    type: str
    id: int
    name: str
    hidden: bool
    addresses: list[str]


class CandidatesOut(Out):
    """O3's candidates for an item; `problem` says why none can be written to, when that is so."""

    candidates: list[CandidateOut]
    problem: str | None


class SendMail(Strict):
    """A mail written from an item: from one of the caller's mailboxes, to addresses the sender picked."""

    mailbox_id: RowId
    to: Annotated[list[Recipient], Field(min_length=1, max_length=50)]
    cc: Annotated[list[Recipient], Field(max_length=50)] = []
    subject: Subject = ""
    body: Annotated[str, StringConstraints(max_length=1_000_000)] = ""
    reply_to_message_id: RowId | None = Field(None, description="the mail this one answers (M10: it stays open)")


class SentMailOut(Out):
    """The sent mail, its SMTP status and the items created for new addresses (O1)."""

    outgoing_id: int
    message_id: int
    message_key: str
    status: str
    smtp_reply: str
    created: list[dict[str, object]]
    rule_ids: list[str]


class ItemMailOut(Out):
    """One mail on an item, with its activity."""

    message_id: int
    message_key: str
    direction: str
    subject: str
    from_address: str | None
    to_addresses: list[str]
    received_at: datetime | None
    arrived_at: datetime
    activity_id: int
    responsible_id: int | None
    completed_at: datetime | None
    bound_to: list[dict[str, object]]


class FollowUp(Strict):
    """M10: a new activity from an incoming mail (the mail's own activity is completed)."""

    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    deadline: datetime | None = None
    responsible_id: RowId | None = None


class FollowUpOut(Out):
    """The completed activity and the new one."""

    completed_activity_id: int
    new_activity_id: int


class MoveMail(Strict):
    """M9: the deal the mail moves to."""

    deal_id: RowId
