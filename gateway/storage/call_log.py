"""Writing the call log (SPEC R7): one row per call, keyed by its CRM interaction key "call:<Call-ID>".

Every function may be called twice with the same arguments (a retransmitted INVITE, a duplicated BYE, a
retried observer task) and changes the row once: the start is an INSERT ... ON CONFLICT DO NOTHING; an
answer, an end or a CRM outcome is written only while the row has none yet (the first one stands); an
offer to an employee already offered adds nothing. A call that was never started (no row for the key)
is left alone: those functions create nothing and return False. The caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage.base import check_choice
from gateway.storage.models.calls import Call
from gateway.storage.models.enums import CallOutcome
from gateway.vocabulary import Direction

FINAL_OUTCOMES = frozenset(CallOutcome) - {CallOutcome.RINGING}
# Core statements on the table, not the ORM entity: every call writes its row three or four times, and an
# ORM-enabled UPDATE costs several times a Core one in Python (bulk-persistence setup per statement).
_CALLS = Call.__table__


async def record_start(
    session: AsyncSession, *, key: str, call_id: str, direction: str, number_id: int | None, number: str,
    party_raw: str, party_e164: str | None, started_at: datetime, routing: dict[str, Any],
    crm: dict[str, Any] | None = None,
) -> bool:
    """Log a call's start (outcome 'ringing'), with its CRM outcome when already decided; a second start
    for the same key changes nothing. True when this start wrote the row."""
    values = {
        "interaction_key": key, "call_id": call_id,
        "direction": check_choice(Direction, "direction", direction),
        "number_id": number_id, "number": number, "party_raw": party_raw, "party_e164": party_e164,
        "started_at": started_at, "offered_ids": [], "outcome": CallOutcome.RINGING.value, "routing": routing,
    }
    if crm is not None:  # absent, not None: a JSON column would store None as JSON null, not SQL NULL
        values["crm"] = crm
    result = await session.execute(_start_statement(session.get_bind().dialect.name, crm is not None), values)
    return bool(result.rowcount)  # type: ignore[attr-defined]


_START_COLUMNS = ("interaction_key", "call_id", "direction", "number_id", "number", "party_raw", "party_e164",
                  "started_at", "offered_ids", "outcome", "routing")
_STARTS: dict[tuple[str, bool], Any] = {}


def _start_statement(dialect: str, with_crm: bool) -> Any:
    """INSERT … ON CONFLICT DO NOTHING of a call's start, built once per dialect: on the call path,
    building a statement costs more than running it."""
    statement = _STARTS.get((dialect, with_crm))
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        columns = (*_START_COLUMNS, "crm") if with_crm else _START_COLUMNS
        statement = _STARTS[(dialect, with_crm)] = insert(_CALLS).values(
            {name: sa.bindparam(name, type_=_CALLS.c[name].type) for name in columns}
        ).on_conflict_do_nothing(index_elements=["interaction_key"])
    return statement


async def record_offer(session: AsyncSession, key: str, employee_id: int) -> bool:
    """Add `employee_id` to the employees the call was offered to (once). False: no such call."""
    return await record_offers(session, key, (employee_id,))


async def record_offers(session: AsyncSession, key: str, employee_ids: Sequence[int]) -> bool:
    """Add `employee_ids` to the employees the call was offered to (each once, in order): one read and at
    most one write. False: no such call."""
    # FOR UPDATE: two offers of one call at once (R2 'everybody') must not overwrite each other's list.
    row = (await session.execute(
        sa.select(_CALLS.c.id, _CALLS.c.offered_ids).where(_CALLS.c.interaction_key == key).with_for_update()
    )).first()
    if row is None:
        return False
    before = list(row.offered_ids or [])
    merged = _with_offers(before, employee_ids)
    if len(merged) != len(before):
        await session.execute(sa.update(_CALLS).where(_CALLS.c.id == row.id).values(offered_ids=merged))
    return True


def _with_offers(before: list[int], employee_ids: Sequence[int]) -> list[int]:
    """`before` followed by those of `employee_ids` it does not hold yet, each once, in order."""
    merged = list(before)
    merged.extend(e for e in dict.fromkeys(employee_ids) if e not in before)
    return merged


async def record_answer(session: AsyncSession, key: str, *, answered_at: datetime, employee_id: int | None) -> bool:
    """Log who answered and when (the first answer stands; an answer after the end is ignored).
    False: no such call."""
    return await _set_once(session, key, (Call.answered_at, Call.ended_at), {
        "answered_at": answered_at, "answered_by_id": employee_id, "outcome": CallOutcome.ANSWERED.value,
    })


async def record_offers_and_answer(
    session: AsyncSession, key: str, offered: Sequence[int], *, answered_at: datetime, employee_id: int | None
) -> bool:
    """`record_offers` then `record_answer` with one read and one write (the row is written once, not
    twice: a call's row carries its routing record, several KB). False: no such call."""
    row = (await session.execute(_OFFERS_AND_ANSWER, {"key": key})).first()
    if row is None:
        return False
    before = list(row.offered_ids or [])
    merged = _with_offers(before, offered)
    offers = len(merged) != len(before)
    answer = row.answered_at is None and row.ended_at is None
    if offers or answer:
        values: dict[str, Any] = {"row_id": row.id}
        if offers:
            values["offered_ids"] = merged
        if answer:
            values.update(answered_at=answered_at, answered_by_id=employee_id, outcome=CallOutcome.ANSWERED.value)
        await session.execute(_ANSWERS[(offers, answer)], values)
    return True


_OFFERS_AND_ANSWER = (
    sa.select(_CALLS.c.id, _CALLS.c.offered_ids, _CALLS.c.answered_at, _CALLS.c.ended_at)
    .where(_CALLS.c.interaction_key == sa.bindparam("key")).with_for_update()
)


def _answer_statement(offers: bool, answer: bool) -> Any:
    columns = (("offered_ids",) if offers else ()) + (("answered_at", "answered_by_id", "outcome") if answer else ())
    return sa.update(_CALLS).where(_CALLS.c.id == sa.bindparam("row_id")).values(
        {name: sa.bindparam(name, type_=_CALLS.c[name].type) for name in columns})


#: (offers change, answer written) → its UPDATE, built once.
_ANSWERS = {(offers, answer): _answer_statement(offers, answer)
            for offers in (False, True) for answer in (False, True) if offers or answer}


async def record_end(session: AsyncSession, key: str, *, ended_at: datetime, outcome: str, status: int | None) -> bool:
    """Log the call's end: `outcome` ('answered', 'missed', 'rejected' or 'failed') and the final SIP
    `status` the caller got (the first end stands). False: no such call."""
    if outcome not in FINAL_OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(sorted(FINAL_OUTCOMES))}; got {outcome!r}")
    return await _set_once(session, key, (Call.ended_at,), {"ended_at": ended_at, "outcome": outcome, "status": status})


async def end_first(session: AsyncSession, key: str, *, ended_at: datetime, outcome: str, status: int | None) -> bool:
    """`record_end` in one statement, True only when this end is the one written (False: the call has
    ended already, or no such call), so the caller writes what goes with an end exactly once."""
    if outcome not in FINAL_OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(sorted(FINAL_OUTCOMES))}; got {outcome!r}")
    result = await session.execute(_END_FIRST, {"key": key, "new_ended_at": ended_at, "new_outcome": outcome,
                                                "new_status": status})
    return bool(result.rowcount)  # type: ignore[attr-defined]


_END_FIRST = (
    sa.update(_CALLS).where(_CALLS.c.interaction_key == sa.bindparam("key"), _CALLS.c.ended_at.is_(None))
    .values(ended_at=sa.bindparam("new_ended_at", type_=_CALLS.c.ended_at.type),
            outcome=sa.bindparam("new_outcome", type_=_CALLS.c.outcome.type),
            status=sa.bindparam("new_status", type_=_CALLS.c.status.type))
)


async def record_crm(session: AsyncSession, key: str, crm: dict[str, Any]) -> bool:
    """Log the call's CRM outcome ({action, rule_ids, notes, responsible_id}; the first stands).
    False: no such call."""
    return await _set_once(session, key, (Call.crm,), {"crm": crm})


async def _set_once(
    session: AsyncSession, key: str, unset: tuple[Any, ...], values: dict[str, Any]
) -> bool:
    """Write `values` on the call `key` while its `unset` columns are NULL; True when the call exists."""
    result = await session.execute(
        sa.update(_CALLS).where(_CALLS.c.interaction_key == key, *(_CALLS.c[column.key].is_(None) for column in unset))
        .values(**values)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    return await session.scalar(sa.select(_CALLS.c.id).where(_CALLS.c.interaction_key == key)) is not None


async def record_transfers(
    session: AsyncSession, key: str, *, transfers: list[dict[str, Any]], legs: list[dict[str, Any]]
) -> bool:
    """Log how a transferred call went (SPEC R5): the transfer chain and who talked to the caller for how
    long, kept in the routing record (a transfer is routing the call on). False: no such call."""
    row = (await session.execute(
        sa.select(Call.id, Call.routing).where(Call.interaction_key == key).with_for_update()
    )).first()
    if row is None:
        return False
    routing = {**(row.routing or {}), "transfers": transfers, "legs": legs}
    await session.execute(sa.update(Call).where(Call.id == row.id).values(routing=routing))
    return True


async def record_note(session: AsyncSession, key: str, note: str) -> bool:
    """Add `note` to the call's routing notes (once), e.g. that a restart ended it. False: no such call."""
    row = (await session.execute(
        sa.select(Call.id, Call.routing).where(Call.interaction_key == key).with_for_update()
    )).first()
    if row is None:
        return False
    routing = dict(row.routing or {})
    notes = list(routing.get("notes") or [])
    if note not in notes:
        routing["notes"] = [*notes, note]
        await session.execute(sa.update(Call).where(Call.id == row.id).values(routing=routing))
    return True


async def ended_at(session: AsyncSession, key: str) -> datetime | None:
    """When the call's end was logged (None: not yet, or no such call)."""
    return await session.scalar(sa.select(Call.ended_at).where(Call.interaction_key == key))  # type: ignore[no-any-return]
