"""Write-behind of registrar bindings (gateway.registrar.persistence) against real databases.

The clocks are injected (`Clocks`): the registrar's monotonic clock and the wall clock are plain
numbers a test sets, so a "restart" is a new store whose monotonic clock starts somewhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.registrar.bindings import Binding
from gateway.registrar.persistence import BindingPersistence, Changes, JournaledBindingStore
from gateway.storage.registrations import SqlBindingBackend
from gateway.storage.session import make_engine, make_sessionmaker
from tests.integration.conftest import free_port

WALL = 1_800_000_000.0


@dataclass
class Clocks:
    mono: float = 1000.0
    wall: float = WALL

    def persistence(self, store: JournaledBindingStore, backend: SqlBindingBackend) -> BindingPersistence:
        return BindingPersistence(store, backend, mono=lambda: self.mono, wall=lambda: self.wall)


def _register(store: JournaledBindingStore, clocks: Clocks, aor: str, contact: str, *, expires: int = 300,
              cseq: int = 2) -> None:
    now = clocks.mono
    store.put(aor, Binding(contact, now + expires, f"call-{aor}", cseq, ("udp", "10.0.0.7", 5062), now))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def backend(engine: AsyncEngine) -> SqlBindingBackend:
    return SqlBindingBackend(make_sessionmaker(engine))


async def _saved(backend: SqlBindingBackend) -> list[tuple[str, str, int, float]]:
    return sorted((b.aor, b.contact, b.cseq, b.expires_at) for b in await backend.load(0.0))


async def test_bindings_survive_a_restart_with_the_monotonic_clock_started_anew(backend: SqlBindingBackend) -> None:
    before = Clocks(mono=1000.0, wall=WALL)
    store = JournaledBindingStore()
    _register(store, before, "1001", "sip:1001@10.0.0.7:5062", expires=300, cseq=7)
    assert await before.persistence(store, backend).flush()

    # 100 s later a new process: its loop clock reads 5.0.
    after = Clocks(mono=5.0, wall=WALL + 100)
    restored = JournaledBindingStore()
    assert await after.persistence(restored, backend).load() == 1
    [binding] = restored.current("1001", after.mono)
    assert binding.expires_at == pytest.approx(5.0 + 200)
    assert binding.registered_at == pytest.approx(5.0 - 100)
    assert (binding.contact, binding.call_id, binding.cseq, binding.source) == (
        "sip:1001@10.0.0.7:5062", "call-1001", 7, ("udp", "10.0.0.7", 5062)
    )
    assert binding.remaining(after.mono) == 200
    assert not restored.take_changes(), "restored bindings are not written back as changes"


async def test_bindings_expired_by_the_restart_are_not_loaded(backend: SqlBindingBackend) -> None:
    clocks = Clocks()
    store = JournaledBindingStore()
    _register(store, clocks, "1001", "sip:short@h", expires=60)
    _register(store, clocks, "1001", "sip:long@h", expires=3600)
    assert await clocks.persistence(store, backend).flush()
    later = Clocks(mono=1.0, wall=WALL + 60)
    restored = JournaledBindingStore()
    assert await later.persistence(restored, backend).load() == 1
    assert restored.contacts("1001", later.mono) == ["sip:long@h"]


async def test_changes_between_flushes_go_out_as_one_transaction_with_the_latest_state(
    engine: AsyncEngine, backend: SqlBindingBackend
) -> None:
    commits: list[object] = []
    event.listen(engine.sync_engine, "commit", commits.append)
    clocks = Clocks()
    store = JournaledBindingStore()
    persistence = clocks.persistence(store, backend)
    for n in range(40):
        _register(store, clocks, f"1{n:03d}", f"sip:phone{n}@h", cseq=2)
    _register(store, clocks, "1000", "sip:phone0@h", cseq=3, expires=600)  # a refresh of the first
    store.remove("1001", "sip:phone1@h")  # an un-REGISTER
    store.remove_all("1002")  # Contact: *
    _register(store, clocks, "1002", "sip:again@h", cseq=9)
    assert await persistence.flush()
    assert len(commits) == 1
    saved = await _saved(backend)
    assert len(saved) == 39
    assert ("1000", "sip:phone0@h", 3, WALL + 600) in saved
    assert not any(aor == "1001" for aor, *_ in saved)
    assert [(c, cseq) for aor, c, cseq, _ in saved if aor == "1002"] == [("sip:again@h", 9)]

    commits.clear()
    assert await persistence.flush()
    assert commits == [], "nothing changed, nothing written (the purge is not due yet)"


async def test_a_failing_database_keeps_the_latest_changes_until_a_flush_succeeds(
    engine: AsyncEngine, backend: SqlBindingBackend
) -> None:
    """A real database error (the table renamed away), not a mock: registrations carry on in memory,
    and once the table is back one flush writes the latest state of every binding."""
    clocks = Clocks()
    store = JournaledBindingStore()
    persistence = clocks.persistence(store, backend)
    _register(store, clocks, "1001", "sip:a@h", cseq=2)
    _register(store, clocks, "1002", "sip:gone@h", cseq=2)
    assert await persistence.flush()

    async with engine.begin() as connection:
        await connection.execute(sa.text("ALTER TABLE registrar_bindings RENAME TO registrar_bindings_away"))
    _register(store, clocks, "1001", "sip:a@h", cseq=3)
    _register(store, clocks, "1003", "sip:new@h", cseq=2)
    assert not await persistence.flush()
    assert persistence.failing
    # Registrations keep working while the database fails, and later changes pile on the failed ones.
    store.remove("1002", "sip:gone@h")
    _register(store, clocks, "1001", "sip:a@h", cseq=4)
    assert not await persistence.flush()
    assert store.contacts("1003", clocks.mono) == ["sip:new@h"]

    async with engine.begin() as connection:
        await connection.execute(sa.text("ALTER TABLE registrar_bindings_away RENAME TO registrar_bindings"))
    assert await persistence.flush()
    assert not persistence.failing
    assert [(aor, contact, cseq) for aor, contact, cseq, _ in await _saved(backend)] == [
        ("1001", "sip:a@h", 4), ("1003", "sip:new@h", 2)
    ]


async def test_a_database_that_is_down_stops_neither_start_nor_registrations_nor_shutdown() -> None:
    """PostgreSQL at a port where nothing listens (connection refused): load finds nothing, flushes
    fail and keep the changes, and `run` still returns after its last attempt once told to stop."""
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gateway")
    try:
        clocks = Clocks()
        store = JournaledBindingStore()
        persistence = clocks.persistence(store, SqlBindingBackend(make_sessionmaker(engine)))
        assert await persistence.load() == 0
        _register(store, clocks, "1001", "sip:a@h")
        assert not await persistence.flush()
        stop = asyncio.Event()
        stop.set()
        await persistence.run(stop)
        assert store.contacts("1001", clocks.mono) == ["sip:a@h"]
        assert list(store.take_changes().latest) == [("1001", "sip:a@h")]
    finally:
        await engine.dispose()


async def test_run_flushes_once_more_when_stopped(backend: SqlBindingBackend) -> None:
    clocks = Clocks()
    store = JournaledBindingStore()
    persistence = clocks.persistence(store, backend)
    stop = asyncio.Event()
    task = asyncio.create_task(persistence.run(stop))
    _register(store, clocks, "1001", "sip:last@h")
    stop.set()
    await task
    assert [contact for _, contact, *_ in await _saved(backend)] == ["sip:last@h"]


def test_changes_merged_back_keep_order_newer_wins() -> None:
    binding = Binding("sip:a@h", 10.0, "c", 1, ("udp", "h", 1), 0.0)
    newer = Binding("sip:a@h", 20.0, "c", 2, ("udp", "h", 1), 5.0)
    failed = Changes()
    failed.put("1001", binding)
    failed.put("1002", binding)
    failed.remove("1003", "sip:x@h")
    since = Changes()
    since.put("1001", newer)
    since.clear("1002")
    merged = failed.then(since)
    assert merged.cleared == {"1002"}
    assert merged.latest == {("1001", "sip:a@h"): newer, ("1003", "sip:x@h"): None}
