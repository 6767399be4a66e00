"""/calls: the call log (SPEC R7), for admins and number managers (it names callers and CRM items
regardless of item rights). Newest first; filters by number, party, time range and Call-ID."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import NumberManager
from gateway.admin.call_details import call_items, crm_lines, routing_lines
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import invalid
from gateway.admin.lookup import get_or_404
from gateway.admin.schemas.calls import CallDetailOut, CallOut
from gateway.admin.schemas.common import Page
from gateway.crm_bridge.identity import normalize_phone
from gateway.storage.e164 import number_e164
from gateway.storage.models import Call, Number

router = APIRouter(prefix="/calls", tags=["call log"])

NumberFilter = Annotated[str | None, Query(max_length=64, description=(
    "a gateway number in any form (E.164 with or without +, or national), or the dialled text of a call "
    "that matched no number"))]
PartyFilter = Annotated[str | None, Query(max_length=255, description=(
    "the other party: E.164 with or without +, or any part of the party as signalled (e.g. 'anonymous')"))]
TimeFilter = Annotated[datetime | None, Query(description="ISO 8601 with a time zone, e.g. 2026-12-04T09:00:00Z")]
CallIdFilter = Annotated[str | None, Query(max_length=1024, description="the SIP Call-ID of leg A")]


def call_out(call: Call) -> CallOut:
    """The API view of a call-log row."""
    duration = (call.ended_at - call.answered_at).total_seconds() if call.answered_at and call.ended_at else None
    return CallOut(
        id=call.id, interaction_key=call.interaction_key, call_id=call.call_id, direction=call.direction,
        number_id=call.number_id, number=call.number, party_raw=call.party_raw, party_e164=call.party_e164,
        started_at=call.started_at, answered_at=call.answered_at, ended_at=call.ended_at, duration_s=duration,
        answered_by_id=call.answered_by_id, offered_ids=list(call.offered_ids or []), outcome=call.outcome,
        status=call.status, routing=call.routing or {}, crm=call.crm,
    )


def _as_e164(text: str) -> str | None:
    """`text` in E.164 when it is a number written internationally, with or without its +."""
    digits = text.strip()
    if digits and not digits.startswith("+") and digits.replace(" ", "").isdigit():
        digits = "+" + digits
    return normalize_phone(digits, "ZZ")


async def _number_forms(session: AsyncSession, text: str) -> set[str]:
    """What a call's `number` may hold for a number filter: the text itself, its E.164 read
    internationally, and read in the region of each configured number (national forms)."""
    forms = {text.strip()}
    if (e164 := _as_e164(text)) is not None:
        forms.add(e164)
    for region in set(await session.scalars(select(Number.default_region).distinct())):
        if (national := number_e164(text, region)) is not None:
            forms.add(national)
    return forms


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid(f"{name}: {value.isoformat()} has no time zone; add one, e.g. {value.isoformat()}Z")
    return value


async def _filtered(session: AsyncSession, number: str | None, party: str | None, since: datetime | None,
                    until: datetime | None, call_id: str | None) -> Select[Any]:
    query = select(Call)
    since, until = _utc(since, "since"), _utc(until, "until")
    if since is not None and until is not None and since > until:
        raise invalid("since: must not be after until")
    if number:
        query = query.where(Call.number.in_(await _number_forms(session, number)))
    if party:
        pattern = "%" + party.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches: list[ColumnElement[bool]] = [Call.party_raw.like(pattern, escape="\\")]
        if (e164 := _as_e164(party)) is not None:
            matches.append(Call.party_e164 == e164)
        query = query.where(or_(*matches))
    if since is not None:
        query = query.where(Call.started_at >= since)
    if until is not None:
        query = query.where(Call.started_at <= until)
    if call_id:
        query = query.where(Call.call_id == call_id)
    return query


@router.get("", response_model=Page[CallOut], summary="The call log, newest first")
async def list_calls(session: SessionDep, page: PageDep, operator: NumberManager, number: NumberFilter = None,
                     party: PartyFilter = None, since: TimeFilter = None, until: TimeFilter = None,
                     call_id: CallIdFilter = None) -> Page[CallOut]:
    """Admins and number managers. Filters combine (AND); `since`/`until` bound the start time."""
    query = await _filtered(session, number, party, since, until, call_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(Call.started_at.desc(), Call.id.desc()).limit(page.limit).offset(page.offset))
    return Page(items=[call_out(c) for c in rows], total=total, limit=page.limit, offset=page.offset)


@router.get("/{call_log_id}", response_model=CallDetailOut, summary="One call with its CRM items and reasons")
async def read_call(call_log_id: IdPath, session: SessionDep, operator: NumberManager) -> CallDetailOut:
    """Admins and number managers. `items`: the CRM items the call created or attached its activity to;
    `explanation`: its routing and CRM rule ids as sentences."""
    call = await get_or_404(session, Call, call_log_id, "call")
    explanation = routing_lines(call.routing or {}) + await crm_lines(session, call)
    return CallDetailOut(**call_out(call).model_dump(), items=await call_items(session, call.interaction_key),
                         explanation=explanation)
