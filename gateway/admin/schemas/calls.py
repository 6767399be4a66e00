"""The call log (SPEC R7) as the admin API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from gateway.admin.schemas.common import Out


class CallOut(Out):
    """One call of the log. `number`: the gateway number in E.164 (or the dialled text when it matched
    none); `party_raw` the other party as signalled, `party_e164` the same in E.164 when usable (R6).
    `routing` and `crm` are the decisions with their rule ids (`crm` null until decided)."""

    id: int
    interaction_key: str
    call_id: str
    direction: str
    number_id: int | None
    number: str
    party_raw: str
    party_e164: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None = Field(description="seconds from answer to end; null when not answered or not ended")
    answered_by_id: int | None
    offered_ids: list[int]
    outcome: str = Field(description="ringing, answered, missed, rejected or failed")
    status: int | None = Field(description="the final SIP status the caller got")
    routing: dict[str, Any]
    crm: dict[str, Any] | None


class CallItemOut(Out):
    """A CRM item the call created, or attached its activity to."""

    type: str
    id: int
    how: Literal["created", "attached"]


class CallDetailOut(CallOut):
    """A call with the CRM items it created or attached (read from the CRM now) and why it went where
    it went: one sentence per routing and CRM rule id."""

    items: list[CallItemOut]
    explanation: list[str]
