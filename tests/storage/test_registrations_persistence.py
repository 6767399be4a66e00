"""Write-behind of registrar bindings (gateway.registrar.persistence) against real databases.

The clocks are injected (`Clocks`): the registrar's monotonic clock and the wall clock are plain
numbers a test sets, so a "restart" is a new store whose monotonic clock starts somewhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.registrar.bindings import Binding
from gateway.registrar.persistence import BindingPersistence, BindingRecord, Changes, JournaledBindingStore
from gateway.storage.registrations import SqlBindingBackend, StoredBinding
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


_REFUSE_SQLITE = """CREATE TRIGGER refuse BEFORE INSERT ON registrar_bindings
WHEN NEW.contact LIKE 'sip:refused%' BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"""
_REFUSE_PG = ["""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
IF NEW.contact LIKE 'sip:refused%' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF;
RETURN NEW; END $$""", """CREATE TRIGGER refuse BEFORE INSERT ON registrar_bindings
FOR EACH ROW EXECUTE FUNCTION refuse()"""]


@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "bad-last"])
async def test_a_row_the_database_refuses_is_dropped_and_never_blocks_the_others(
    engine: AsyncEngine, backend: SqlBindingBackend, caplog: pytest.LogCaptureFixture, bad_first: bool
) -> None:
    """A real refusal by the database (a trigger that rejects one Contact), not a mock: the failed batch
    is retried row by row, every other change is saved, the refused one is dropped with one warning
    and not retried (it stays in memory, so the phone keeps working)."""
    async with engine.begin() as connection:
        for statement in [_REFUSE_SQLITE] if engine.dialect.name == "sqlite" else _REFUSE_PG:
            await connection.execute(sa.text(statement))
    clocks = Clocks()
    store = JournaledBindingStore()
    persistence = clocks.persistence(store, backend)
    _register(store, clocks, "1002", "sip:old@h")
    _register(store, clocks, "1004", "sip:gone@h")
    assert await persistence.flush()

    if bad_first:
        _register(store, clocks, "1001", "sip:refused@h")
    store.remove_all("1002")
    _register(store, clocks, "1002", "sip:new@h", cseq=3)
    _register(store, clocks, "1003", "sip:c@h")
    store.remove("1004", "sip:gone@h")
    if not bad_first:
        _register(store, clocks, "1001", "sip:refused@h")
    with caplog.at_level(logging.WARNING, logger="gateway.registrar.persistence"):
        assert await persistence.flush()
    assert not persistence.failing
    assert [(aor, contact) for aor, contact, *_ in await _saved(backend)] == [
        ("1002", "sip:new@h"), ("1003", "sip:c@h")
    ]
    [warning] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "1001" in warning.getMessage() and "dropped 1" in warning.getMessage()
    assert not store.take_changes(), "the refused row is not handed back to be retried forever"
    assert store.contacts("1001", clocks.mono) == ["sip:refused@h"]


async def test_a_flush_cancelled_while_writing_hands_its_changes_back(backend: SqlBindingBackend) -> None:
    """Shutdown can cancel the flush task mid-write: what it had taken goes back to the journal."""
    clocks = Clocks()
    store = JournaledBindingStore()
    persistence = clocks.persistence(store, backend)
    _register(store, clocks, "1001", "sip:a@h")
    store.remove("1002", "sip:b@h")
    task = asyncio.create_task(persistence.flush())
    await asyncio.sleep(0)  # the task runs up to its first wait, inside the backend's write
    assert not store.changes, "the flush has taken the changes and is writing them"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.changes.latest.keys() == {("1001", "sip:a@h"), ("1002", "sip:b@h")}
    assert await persistence.flush()
    assert [contact for _, contact, *_ in await _saved(backend)] == ["sip:a@h"]


class _PurgeSpy:
    """The real backend, noting the `purge_before` of every write (a recorder, not a fake)."""

    def __init__(self, backend: SqlBindingBackend) -> None:
        self.backend = backend
        self.purges: list[float | None] = []

    async def load(self, now: float) -> list[StoredBinding]:
        return await self.backend.load(now)

    async def write(self, cleared: Sequence[str], deleted: Sequence[tuple[str, str]],
                    upserts: Sequence[BindingRecord], purge_before: float | None = None) -> None:
        self.purges.append(purge_before)
        await self.backend.write(cleared, deleted, upserts, purge_before)


async def test_the_purge_rides_only_on_flushes_where_it_is_due(backend: SqlBindingBackend) -> None:
    clocks = Clocks()
    store = JournaledBindingStore()
    spy = _PurgeSpy(backend)
    persistence = BindingPersistence(store, spy, mono=lambda: clocks.mono, wall=lambda: clocks.wall,
                                     purge_every=60.0)
    _register(store, clocks, "1001", "sip:a@h")
    assert await persistence.flush()
    clocks.mono += 30
    clocks.wall += 30
    _register(store, clocks, "1002", "sip:b@h")
    assert await persistence.flush()
    clocks.mono += 30
    clocks.wall += 30
    assert await persistence.flush()
    assert spy.purges == [WALL, None, WALL + 60]
