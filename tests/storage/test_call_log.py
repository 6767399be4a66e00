"""SPEC R7: the call log's writes are idempotent per interaction key, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.storage import call_log
from gateway.storage.models import Call, Employee
from gateway.storage.session import make_engine, make_sessionmaker

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
KEY = "call:abc@pbx"


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _employees(sessions: async_sessionmaker[AsyncSession], *names: str) -> list[int]:
    async with sessions() as session:
        rows = [Employee(name=name) for name in names]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


async def _start(session: AsyncSession, key: str = KEY, *, routing: dict | None = None) -> None:
    await call_log.record_start(
        session, key=key, call_id=key.removeprefix("call:"), direction="inbound", number_id=None,
        number="+33184880000", party_raw="sip:0612345678@trunk", party_e164="+33612345678",
        started_at=T0, routing=routing or {"rule_ids": ["R1", "R2"]},
    )


async def _call(sessions: async_sessionmaker[AsyncSession], key: str = KEY) -> Call:
    async with sessions() as session:
        row = await session.scalar(sa.select(Call).where(Call.interaction_key == key))
        assert row is not None
        return row


async def test_r7_a_retransmitted_start_gives_one_row_and_keeps_the_first_routing(sessions) -> None:
    async with sessions() as session:
        await _start(session, routing={"rule_ids": ["R2"]})
        await _start(session, routing={"rule_ids": ["other"]})
        await session.commit()
    async with sessions() as session:
        await _start(session, routing={"rule_ids": ["again"]})
        await session.commit()
        assert await session.scalar(sa.select(sa.func.count()).select_from(Call)) == 1
    row = await _call(sessions)
    assert (row.outcome, row.routing, row.started_at, row.offered_ids) == ("ringing", {"rule_ids": ["R2"]}, T0, [])


async def test_r7_offers_are_listed_once_each_in_order(sessions) -> None:
    ann, bob = await _employees(sessions, "Ann", "Bob")
    async with sessions() as session:
        await _start(session)
        for employee_id in (ann, bob, ann, bob):
            assert await call_log.record_offer(session, KEY, employee_id)
        await session.commit()
    assert (await _call(sessions)).offered_ids == [ann, bob]


async def test_r7_first_answer_and_first_end_stand(sessions) -> None:
    ann, bob = await _employees(sessions, "Ann", "Bob")
    async with sessions() as session:
        await _start(session)
        assert await call_log.record_answer(session, KEY, answered_at=T0 + timedelta(seconds=5), employee_id=ann)
        assert await call_log.record_answer(session, KEY, answered_at=T0 + timedelta(seconds=9), employee_id=bob)
        assert await call_log.record_end(session, KEY, ended_at=T0 + timedelta(seconds=60), outcome="answered",
                                         status=200)
        # A duplicated BYE, late and with other facts: the call's end is already logged.
        assert await call_log.record_end(session, KEY, ended_at=T0 + timedelta(seconds=90), outcome="failed",
                                         status=500)
        await session.commit()
    row = await _call(sessions)
    assert (row.answered_by_id, row.answered_at, row.ended_at, row.outcome, row.status) == (
        ann, T0 + timedelta(seconds=5), T0 + timedelta(seconds=60), "answered", 200)


async def test_r7_a_missed_call_stays_missed_when_an_answer_arrives_after_its_end(sessions) -> None:
    (ann,) = await _employees(sessions, "Ann")
    async with sessions() as session:
        await _start(session)
        assert await call_log.record_end(session, KEY, ended_at=T0 + timedelta(seconds=20), outcome="missed",
                                         status=487)
        assert await call_log.record_answer(session, KEY, answered_at=T0 + timedelta(seconds=21), employee_id=ann)
        await session.commit()
    row = await _call(sessions)
    assert (row.outcome, row.status, row.answered_by_id, row.answered_at) == ("missed", 487, None, None)


async def test_r7_crm_outcome_is_written_once(sessions) -> None:
    async with sessions() as session:
        await _start(session)
        first = {"action": "create", "rule_ids": ["T4a", "T10"], "notes": [], "responsible_id": None}
        assert await call_log.record_crm(session, KEY, first)
        assert await call_log.record_crm(session, KEY, {"action": "none", "rule_ids": ["T8"]})
        await session.commit()
    assert (await _call(sessions)).crm == first


async def test_r7_writes_for_a_call_never_started_create_nothing(sessions) -> None:
    (ann,) = await _employees(sessions, "Ann")
    async with sessions() as session:
        assert not await call_log.record_offer(session, "call:nobody", ann)
        assert not await call_log.record_answer(session, "call:nobody", answered_at=T0, employee_id=ann)
        assert not await call_log.record_end(session, "call:nobody", ended_at=T0, outcome="missed", status=487)
        assert not await call_log.record_crm(session, "call:nobody", {"action": "none"})
        await session.commit()
        assert await session.scalar(sa.select(sa.func.count()).select_from(Call)) == 0


async def test_r7_an_end_must_say_how_the_call_ended(sessions) -> None:
    async with sessions() as session:
        await _start(session)
        with pytest.raises(ValueError, match="outcome must be one of answered, failed, missed, rejected"):
            await call_log.record_end(session, KEY, ended_at=T0, outcome="ringing", status=None)


async def test_r7_a_deleted_employee_leaves_the_call_in_the_log(sessions) -> None:
    (ann,) = await _employees(sessions, "Ann")
    async with sessions() as session:
        await _start(session)
        await call_log.record_answer(session, KEY, answered_at=T0, employee_id=ann)
        await session.commit()
        await session.execute(sa.delete(Employee).where(Employee.id == ann))
        await session.commit()
    row = await _call(sessions)
    assert (row.answered_by_id, row.outcome) == (None, "answered")


async def test_r7_offers_and_answer_in_one_write_match_the_two_calls(sessions) -> None:
    """`record_offers_and_answer` leaves the row as `record_offers` then `record_answer` would: offers added
    once each and in order, the first answer standing, no answer after the end."""
    ann, bob, eve = await _employees(sessions, "Ann", "Bob", "Eve")
    first, later = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
    async with sessions() as session:
        await _start(session)
        assert await call_log.record_offers_and_answer(session, KEY, [ann, bob, ann], answered_at=first,
                                                       employee_id=bob)
        assert await call_log.record_offers_and_answer(session, KEY, [bob, eve], answered_at=later, employee_id=eve)
        assert not await call_log.record_offers_and_answer(session, "call:nobody", [ann], answered_at=first,
                                                           employee_id=ann)
        await session.commit()
    call = await _call(sessions)
    assert call.offered_ids == [ann, bob, eve]
    assert (call.answered_at, call.answered_by_id, call.outcome) == (first, bob, "answered")
