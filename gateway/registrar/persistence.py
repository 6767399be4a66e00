"""Registrar bindings that survive a restart: a write-behind journal flushed to a backend in batches.

A REGISTER never waits for the database: `JournaledBindingStore` answers from memory exactly like
`BindingStore` and only notes which bindings changed. `BindingPersistence` flushes those notes in
one batch every `interval` seconds and once more at shutdown; a failed batch is merged back (newer
changes win) and tried again, so a database that is down costs durability, never registrations.

The registrar's clock is the event loop's monotonic clock, which starts from an arbitrary value in
each process; the backend sees wall-clock epoch seconds only, converted at the edges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.registrar.bindings import Binding, BindingStore

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (aor, contact)


@dataclass(frozen=True, slots=True)
class BindingRecord:
    """A binding as the backend stores it: flat, times in wall-clock epoch seconds."""

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    transport: str
    host: str
    port: int
    registered_at: float


class SavedBinding(Protocol):
    """A binding read back from the backend (any object with `BindingRecord`'s fields)."""

    @property
    def aor(self) -> str: ...
    @property
    def contact(self) -> str: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def call_id(self) -> str: ...
    @property
    def cseq(self) -> int: ...
    @property
    def transport(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def registered_at(self) -> float: ...


class BindingBackend(Protocol):
    """Where bindings are kept between processes (`gateway.storage.registrations.SqlBindingBackend`)."""

    async def load(self, now: float) -> Sequence[SavedBinding]:
        """Every binding alive at wall-clock time `now`."""
        ...

    async def write(
        self,
        cleared: Sequence[str],
        deleted: Sequence[Key],
        upserts: Sequence[BindingRecord],
        purge_before: float | None = None,
    ) -> None:
        """Apply one batch atomically: clear the AORs, delete the keys, replace the upserts, purge."""
        ...


@dataclass(slots=True)
class Changes:
    """Bindings changed since the last flush: the latest state per binding, nothing older.

    `cleared` AORs lost every binding (Contact: *); entries in `latest` for such an AOR happened
    after the clear. A `None` in `latest` means the binding was removed.
    """

    cleared: set[str] = field(default_factory=set)
    latest: dict[Key, Binding | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.cleared or self.latest)

    def put(self, aor: str, binding: Binding) -> None:
        self.latest[(aor, binding.contact)] = binding

    def remove(self, aor: str, contact: str) -> None:
        self.latest[(aor, contact)] = None

    def clear(self, aor: str) -> None:
        self.cleared.add(aor)
        for key in [key for key in self.latest if key[0] == aor]:
            del self.latest[key]

    def then(self, newer: Changes) -> Changes:
        """These changes followed by `newer` ones, as one set (a failed batch merged back)."""
        merged = Changes(set(self.cleared), dict(self.latest))
        for aor in newer.cleared:
            merged.clear(aor)
        merged.latest.update(newer.latest)
        return merged


class JournaledBindingStore(BindingStore):
    """A `BindingStore` that notes every change for `BindingPersistence` (subclassed, not edited, so
    `bindings.py` stays as it is). Expiry is not noted: expired rows are never loaded and are purged."""

    __slots__ = ("changes",)

    def __init__(self) -> None:
        super().__init__()
        self.changes = Changes()

    def put(self, aor: str, binding: Binding) -> None:
        super().put(aor, binding)
        self.changes.put(aor, binding)

    def remove(self, aor: str, contact: str) -> None:
        super().remove(aor, contact)
        self.changes.remove(aor, contact)

    def remove_all(self, aor: str) -> None:
        super().remove_all(aor)
        self.changes.clear(aor)

    def restore(self, aor: str, binding: Binding) -> None:
        """Put a binding loaded from the backend, without noting it as a change."""
        super().put(aor, binding)

    def take_changes(self) -> Changes:
        """The changes noted so far; the journal starts empty again."""
        changes, self.changes = self.changes, Changes()
        return changes

    def give_back(self, changes: Changes) -> None:
        """Put back changes that could not be written, before anything noted since."""
        self.changes = changes.then(self.changes)


class BindingPersistence:
    """Loads bindings at start and writes changes behind the registrar, in batches.

    `mono` must be the registrar's clock (the loop's `time`), `wall` the epoch clock (`time.time`).
    """

    def __init__(
        self,
        store: JournaledBindingStore,
        backend: BindingBackend,
        *,
        mono: Callable[[], float],
        wall: Callable[[], float] = time.time,
        interval: float = 1.0,
        purge_every: float = 60.0,
        write_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.backend = backend
        self.mono = mono
        self.wall = wall
        self.interval = interval
        self.purge_every = purge_every
        self.write_timeout = write_timeout
        self.failing = False
        self._last_purge: float | None = None

    def _offset(self) -> float:
        """Wall-clock minus registrar clock, right now (add it to a registrar time to get wall time)."""
        return self.wall() - self.mono()

    async def load(self) -> int:
        """Put every binding the backend still holds into the store; returns how many.

        A backend that fails is logged and loads nothing: phones register again within their Expires.
        """
        try:
            saved = await asyncio.wait_for(self.backend.load(self.wall()), self.write_timeout)
        except Exception as error:  # any backend failure: start empty rather than not at all
            log.error("registrar bindings: cannot load saved registrations (%s); phones must register again",
                      _first_line(error))
            return 0
        offset = self._offset()
        for record in saved:
            self.store.restore(record.aor, Binding(
                record.contact, record.expires_at - offset, record.call_id, record.cseq,
                (record.transport, record.host, record.port), record.registered_at - offset,
            ))
        log.info("registrar bindings: restored %d registration(s)", len(saved))
        return len(saved)

    async def flush(self) -> bool:
        """Write what changed since the last flush in one batch; False (changes kept) when it failed."""
        now = self.mono()
        purge_due = self._last_purge is None or now - self._last_purge >= self.purge_every
        changes = self.store.take_changes()
        if not changes and not purge_due:
            return True
        offset = self._offset()
        upserts: list[BindingRecord] = []
        deleted: list[Key] = []
        for (aor, contact), binding in changes.latest.items():
            if binding is None or binding.expires_at <= now:
                deleted.append((aor, contact))
            else:
                upserts.append(_record(aor, binding, offset))
        try:
            await asyncio.wait_for(
                self.backend.write(sorted(changes.cleared), deleted, upserts, now + offset),
                self.write_timeout,
            )
        except Exception as error:  # a failing database must not stop registrations
            self.store.give_back(changes)
            if not self.failing:
                log.warning("registrar bindings: cannot save registrations (%s); retrying every %gs, "
                            "keeping them in memory meanwhile", _first_line(error), self.interval)
            self.failing = True
            return False
        if self.failing:
            log.info("registrar bindings: saving registrations again")
        self.failing = False
        self._last_purge = now
        return True

    async def run(self, stop: asyncio.Event, final_timeout: float = 5.0) -> None:
        """Flush every `interval` seconds until `stop` is set, then once more (bounded by `final_timeout`)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if not stop.is_set():
                await self.flush()
        self.write_timeout = min(self.write_timeout, final_timeout)
        if not await self.flush():
            log.error("registrar bindings: the last changes could not be saved; phones they concern "
                      "must register again after the restart")


def _record(aor: str, binding: Binding, offset: float) -> BindingRecord:
    transport, host, port = binding.source
    return BindingRecord(aor, binding.contact, binding.expires_at + offset, binding.call_id, binding.cseq,
                         transport, host, port, binding.registered_at + offset)


def _first_line(error: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; its first line says what happened, the rest is SQL and links.
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip() or type(cause).__name__
    return f"{type(cause).__name__}: {text.splitlines()[0].strip()}"
