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


@dataclass(slots=True)
class _Step:
    """One change as its own write (a failed batch is retried row by row)."""

    changes: Changes
    cleared: list[str] = field(default_factory=list)
    deleted: list[Key] = field(default_factory=list)
    upserts: list[BindingRecord] = field(default_factory=list)

    def aors(self) -> set[str]:
        return set(self.changes.cleared) | {aor for aor, _ in self.changes.latest}


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
        """Write what changed since the last flush in one batch; False (changes kept) when it failed.

        A failed batch is tried again row by row: rows the database refuses while others go through
        are dropped (kept in memory only), so one bad row never blocks the rest.
        """
        now = self.mono()
        purge_due = self._last_purge is None or now - self._last_purge >= self.purge_every
        changes = self.store.take_changes()
        if not changes and not purge_due:
            return True
        try:
            left = await self._write(changes, now, purge_due)
        except BaseException:
            # Cancelled mid-write (shutdown): the changes taken must not vanish with the task.
            self.store.give_back(changes)
            raise
        if left is not None:
            self.store.give_back(left[0])
            if not self.failing:
                log.warning("registrar bindings: cannot save registrations (%s); retrying every %gs, "
                            "keeping them in memory meanwhile", _first_line(left[1]), self.interval)
            self.failing = True
            return False
        if self.failing:
            log.info("registrar bindings: saving registrations again")
        self.failing = False
        return True

    async def _write(self, changes: Changes, now: float, purge_due: bool) -> tuple[Changes, Exception] | None:
        """Write `changes` (and the purge when due); None when done, else what to retry and why."""
        offset = self._offset()
        steps: list[_Step] = [_Step(Changes(cleared={aor}), cleared=[aor]) for aor in sorted(changes.cleared)]
        for (aor, contact), binding in changes.latest.items():
            one = Changes(latest={(aor, contact): binding})
            if binding is None or binding.expires_at <= now:
                steps.append(_Step(one, deleted=[(aor, contact)]))
            else:
                steps.append(_Step(one, upserts=[_record(aor, binding, offset)]))
        purge_before = now + offset if purge_due else None
        try:
            await self._send([a for s in steps for a in s.cleared], [k for s in steps for k in s.deleted],
                             [r for s in steps for r in s.upserts], purge_before)
        except Exception as error:  # a failing database must not stop registrations
            if not steps:
                return changes, error
            return await self._write_rows(steps, error, now, purge_before)
        if purge_due:
            self._last_purge = now
        return None

    async def _write_rows(
        self, steps: list[_Step], error: Exception, now: float, purge_before: float | None
    ) -> tuple[Changes, Exception] | None:
        """Each change on its own, in the batch's order; None when all are written or dropped.

        A row that fails before a later row goes through was refused by a working database: dropped.
        Rows failing after the last success may mean the database went away, so that success is sent
        again (idempotent: nothing after it was written); if it goes through they are dropped too, else
        they are kept. A timeout means an unresponsive database: the rest is kept without waiting more.
        """
        refused: list[tuple[int, Exception]] = []
        pending: list[tuple[int, Exception]] = []  # failed since the last row that went through
        last_ok: int | None = None
        for index, step in enumerate(steps):
            try:
                await self._send(step.cleared, step.deleted, step.upserts, None)
            except TimeoutError as timeout:
                pending += [(later, timeout) for later in range(index, len(steps))]
                last_ok = None  # no retry of the last success: it would only time out too
                break
            except Exception as failure:  # judged below: a refused row, or the database gone
                pending.append((index, failure))
            else:
                refused, pending, last_ok = refused + pending, [], index
        if pending and last_ok is not None:
            with contextlib.suppress(Exception):  # the database is gone: the pending rows are kept
                await self._send(steps[last_ok].cleared, steps[last_ok].deleted, steps[last_ok].upserts, None)
                refused, pending = refused + pending, []
        self._drop(steps, refused)
        if pending:
            left = Changes()
            for index, _ in pending:
                left = left.then(steps[index].changes)
            return left, pending[0][1] if refused else error
        if purge_before is not None:
            with contextlib.suppress(Exception):  # a purge that fails is due again next flush
                await self._send([], [], [], purge_before)
                self._last_purge = now
        return None

    async def _send(
        self, cleared: list[str], deleted: list[Key], upserts: list[BindingRecord], purge_before: float | None
    ) -> None:
        await asyncio.wait_for(self.backend.write(cleared, deleted, upserts, purge_before), self.write_timeout)

    @staticmethod
    def _drop(steps: list[_Step], refused: list[tuple[int, Exception]]) -> None:
        if not refused:
            return
        aors = sorted({aor for index, _ in refused for aor in steps[index].aors()})
        kinds = sorted({type(getattr(error, "orig", None) or error).__name__ for _, error in refused})
        # The AOR and the kind of error tell an operator where to look; row values (Contact, Call-ID)
        # come from the network and stay out of the log.
        log.warning("registrar bindings: dropped %d change(s) the database refused (%s) for AOR %s; "
                    "kept in memory only until the phones register again", len(refused), ", ".join(kinds),
                    ", ".join(_printable(aor) for aor in aors[:10]))

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


def _printable(text: str) -> str:
    # Undecodable bytes from the wire are surrogates: escape them rather than break the log handler.
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def _first_line(error: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; its first line says what happened, the rest is SQL and links.
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip() or type(cause).__name__
    return f"{type(cause).__name__}: {text.splitlines()[0].strip()}"
