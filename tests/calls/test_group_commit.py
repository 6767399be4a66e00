"""Group commit of the call journal's jobs (gateway.calls.group_commit), on real SQLite and PostgreSQL.

Jobs a few milliseconds apart share one transaction; each returns only once it is committed; a job that
fails rolls the group back and the others are told to run again (SPEC C4: retried, never lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.calls.group_commit import GroupCommit, GroupRolledBack
from gateway.calls.keyed_work import KeyedWork
from gateway.storage.session import make_call_path_engine, make_sessionmaker

INSERT = sa.text("INSERT INTO idempotency_keys (key, created_at, result) VALUES (:key, :at, NULL)")


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_call_path_engine(db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _written(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return sorted((await session.scalars(sa.text("SELECT key FROM idempotency_keys"))).all())


async def _write(group: GroupCommit, key: str, seen: dict[str, list[str]] | None = None,
                 sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
    async with group.transaction() as session:
        await session.execute(INSERT, {"key": key, "at": datetime.now(UTC)})
    if seen is not None and sessions is not None:
        seen[key] = await _written(sessions)  # what another connection reads once the job returned


async def test_c4_jobs_close_together_share_one_commit_and_return_once_it_is_done(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    group = GroupCommit(sessions, gather=0.05)
    seen: dict[str, list[str]] = {}
    await asyncio.gather(*(_write(group, f"k{i}", seen, sessions) for i in range(5)))

    assert group.commits == 1
    assert await _written(sessions) == [f"k{i}" for i in range(5)]
    assert all(keys == [f"k{i}" for i in range(5)] for keys in seen.values())  # durable when each returned


async def test_c4_a_quiet_group_commits_soon_and_a_busy_one_grows_until_gather(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    group = GroupCommit(sessions, gather=30.0, max_jobs=1000, quiet=0.2)
    # A lone job: committed once nobody joined it for `quiet`, not after `gather`.
    await asyncio.wait_for(_write(group, "alone"), 5.0)
    assert group.commits == 1

    # Jobs joining every 10 ms (closer than `quiet`) keep one group open past `quiet` ...
    async def stream() -> None:
        writes = []
        for i in range(8):
            writes.append(asyncio.ensure_future(_write(group, f"s{i}")))
            await asyncio.sleep(0.01)
        await asyncio.gather(*writes)

    await asyncio.wait_for(stream(), 5.0)
    assert group.commits == 2
    # ... until `gather`, which still bounds a group that never goes quiet.
    bounded = GroupCommit(sessions, gather=0.3, max_jobs=1000, quiet=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writes = []
    while loop.time() - started < 1.0:
        writes.append(asyncio.ensure_future(_write(bounded, f"b{len(writes)}")))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*writes), 5.0)
    assert 2 <= bounded.commits <= 5, bounded.commits  # about one per 0.3 s, none waiting for quiet
    assert len(await _written(sessions)) == 1 + 8 + len(writes)
    with pytest.raises(ValueError, match="quiet"):
        GroupCommit(sessions, gather=0.01, quiet=0.02)


async def test_c4_a_full_group_commits_without_waiting(sessions: async_sessionmaker[AsyncSession]) -> None:
    group = GroupCommit(sessions, gather=30.0, max_jobs=3)
    await asyncio.wait_for(asyncio.gather(*(_write(group, f"k{i}") for i in range(3))), 5.0)
    assert group.commits == 1 and len(await _written(sessions)) == 3


async def test_c4_a_failing_job_rolls_its_group_back_and_the_others_are_written_on_their_retry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    group = GroupCommit(sessions, gather=0.05)
    work = KeyedWork(first_delay=0.01)
    failed: list[BaseException] = []

    async def bad() -> None:
        try:
            async with group.transaction() as session:
                await session.execute(INSERT, {"key": "bad", "at": datetime.now(UTC)})
                raise ValueError("a bug in this job")
        except ValueError as error:
            failed.append(error)
            raise

    async def good(key: str) -> None:
        await _write(group, key)

    work.submit("a", lambda: good("a"))
    work.submit("bad", bad)
    work.submit("b", lambda: good("b"))
    assert await work.idle(5.0)

    assert [str(error) for error in failed] == ["a bug in this job"]  # its own error, once (not retried)
    assert await _written(sessions) == ["a", "b"]  # the others: rolled back with it, then written once
    assert work.retries >= 1 and work.failures == 1


async def test_c4_a_write_refused_by_the_database_reaches_its_job_and_rolls_the_others_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    group = GroupCommit(sessions, gather=0.05)
    async with sessions() as session, session.begin():
        await session.execute(INSERT, {"key": "taken", "at": datetime.now(UTC)})

    async def insert(key: str) -> None:
        async with group.transaction() as session:
            await session.execute(INSERT, {"key": key, "at": datetime.now(UTC)})

    # The second job's INSERT hits a key already written: the database refuses it inside that job.
    results = await asyncio.gather(insert("fresh"), insert("taken"), return_exceptions=True)

    assert isinstance(results[0], GroupRolledBack)
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert await _written(sessions) == ["taken"]
