"""The SQLite adapter of the async engine (gateway/storage/sqlite_driver.py): one thread round trip per
statement, and what SQLAlchemy reads of a cursor (rows, rowcount, RETURNING, errors) unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosqlite.core
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.session import make_engine

ITEMS = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String, unique=True))


@pytest.fixture
async def engine(fresh_sqlite_url: Callable[..., str]) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(fresh_sqlite_url())
    async with engine.begin() as connection:
        await connection.run_sync(ITEMS.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every call aiosqlite runs on a connection's thread."""
    seen: list[str] = []
    real = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return seen


async def test_a_statement_and_its_rows_take_one_round_trip(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert(), {"name": "warm"})  # the pool's connection is open now
    trips.clear()
    async with engine.begin() as connection:
        inserted = (await connection.execute(ITEMS.insert().returning(ITEMS.c.id), {"name": "a"})).scalar_one()
        names = (await connection.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id))).scalars().all()
    assert names == ["warm", "a"] and inserted == 2
    assert trips == ["_run_statement", "_run_statement", "commit"]  # no cursor open/close, no rollback


async def test_a_connection_that_ran_nothing_since_its_commit_is_returned_without_a_rollback(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.select(ITEMS.c.id))
    assert trips.count("rollback") == 1  # the read's implicit transaction ends on return to the pool
    trips.clear()
    async with engine.begin() as connection:
        await connection.execute(ITEMS.insert(), {"name": "b"})
    assert "rollback" not in trips


async def test_rowcount_lastrowid_executemany_and_rollback_behave_as_the_plain_driver(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        result = await connection.execute(ITEMS.insert(), [{"name": "x"}, {"name": "y"}, {"name": "z"}])
        assert result.rowcount == 3
        first = await connection.execute(ITEMS.insert(), {"name": "w"})
        assert first.inserted_primary_key == (4,)
        assert (await connection.execute(ITEMS.update().where(ITEMS.c.name != "w").values(name=ITEMS.c.name + "!"))
                ).rowcount == 3
    async with engine.connect() as connection:
        await connection.execute(ITEMS.delete())
        await connection.rollback()
    async with engine.connect() as connection:
        assert (await connection.execute(sa.select(sa.func.count()).select_from(ITEMS))).scalar_one() == 4


async def test_an_error_is_the_dbapi_error_sqlalchemy_maps_and_the_transaction_is_rolled_back(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"):
        async with engine.begin() as connection:
            await connection.execute(ITEMS.insert(), {"name": "dup"})
            await connection.execute(ITEMS.insert(), {"name": "dup"})
    async with engine.connect() as connection:
        assert (await connection.execute(sa.select(sa.func.count()).select_from(ITEMS))).scalar_one() == 0


# -- inline mode (the call path's engines) ------------------------------------------------------------
async def _inline_engine(url: str) -> AsyncEngine:
    return make_engine(url, inline_sqlite=True, pool_size=1, max_overflow=0)


async def test_inline_statements_run_on_the_loops_thread_with_no_round_trip(
    fresh_sqlite_url: Callable[..., str], trips: list[str]
) -> None:
    url = fresh_sqlite_url()
    inline = await _inline_engine(url)
    try:
        async with inline.begin() as connection:
            await connection.run_sync(ITEMS.metadata.create_all)
        trips.clear()
        async with inline.begin() as connection:
            await connection.execute(ITEMS.insert(), [{"name": "a"}, {"name": "b"}])
            rows = (await connection.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id))).scalars().all()
        assert rows == ["a", "b"]
        assert trips == []  # nothing went to the connection's thread
        async with inline.connect() as connection:
            busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            autocheckpoint = (await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
        assert (busy, autocheckpoint) == (0, 0)  # never waits, never checkpoints on the loop
    finally:
        await inline.dispose()


async def test_an_inline_write_waits_for_a_lock_without_blocking_the_loop_then_gives_up_after_busy_wait(
    fresh_sqlite_url: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import contextlib
    import sqlite3
    import time

    from gateway.storage import sqlite_driver

    url = fresh_sqlite_url()
    inline = await _inline_engine(url)
    path = url.split("///", 1)[1]
    try:
        async with inline.begin() as connection:
            await connection.run_sync(ITEMS.metadata.create_all)
        other = sqlite3.connect(path, isolation_level=None)  # another process's writer, in effect
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.get_running_loop().create_task(ticker())
        asyncio.get_running_loop().call_later(0.3, other.commit)
        began = time.monotonic()
        async with inline.begin() as connection:
            await connection.execute(ITEMS.insert(), {"name": "waited"})
        waited = time.monotonic() - began
        assert 0.25 <= waited < 3.0
        assert ticks >= 10  # the loop kept running while the write waited for the lock

        monkeypatch.setattr(sqlite_driver, "BUSY_WAIT", 0.2)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            async with inline.begin() as connection:
                await connection.execute(ITEMS.insert(), {"name": "given up"})
        other.rollback()
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
        other.close()
        async with inline.connect() as connection:
            names = (await connection.execute(sa.select(ITEMS.c.name))).scalars().all()
        assert names == ["waited"]
    finally:
        await inline.dispose()
