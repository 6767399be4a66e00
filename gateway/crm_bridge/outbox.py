"""The durable outbox every CRM write goes through (SPEC C2, C4).

A producer (call hooks, later the mail bridge) calls :func:`enqueue` inside its own transaction, so the
decision and the writes it implies commit together or not at all. The :class:`OutboxWorker` later applies
each entry in its own transaction through a :class:`~gateway.crm_bridge.backend.CrmBackend`:

- in order per interaction key: an entry waits while an earlier one of the same key is not done;
- once: the entry is marked done in the transaction that made the write, and the writes themselves are
  guarded by idempotency keys (see :mod:`gateway.crm_bridge.service`), so a crash between write and
  commit, a retry or a second worker never makes a second item;
- retried with exponential back-off when the backend raises (attempts, next_attempt_at, last_error);
  only a :class:`PermanentOutboxError` or a :class:`~gateway.crm_bridge.backend.CrmError` (the CRM
  refused the request as written), or ``max_attempts`` when set, parks an entry as ``failed``,
  where it blocks the later entries of its key until :func:`requeue_failed` puts it back.

Several gateway nodes may run workers on one PostgreSQL: rows are claimed with
``SELECT … FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from gateway.crm_bridge.backend import CrmBackend, CrmError
from gateway.crm_bridge.linking import LinkPlan
from gateway.crm_bridge.service import BATCH_HANDLERS, HANDLERS, LINK_PLAN, PermanentOutboxError, PlanContext
from gateway.storage.models import Decision, OutboxEntry

__all__ = [
    "Backoff",
    "Handler",
    "OutboxWorker",
    "PermanentOutboxError",
    "QueuedEntry",
    "RunReport",
    "apply_plan",
    "enqueue",
    "enqueue_if_decided",
    "requeue_failed",
    "utcnow",
]

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"

#: How an entry kind is applied: ``handler(session, backend, entry)``; raising means "retry later".
Handler = Callable[[AsyncSession, CrmBackend, OutboxEntry], Awaitable[None]]
#: How many entries of one kind are applied at once (each of a distinct interaction, in one transaction).
BatchHandler = Callable[[AsyncSession, CrmBackend, Sequence[OutboxEntry]], Awaitable[None]]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the outbox's clock when none is passed)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``base * 2**(attempt-1)`` seconds, at most ``cap``."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        exponent = min(max(attempts - 1, 0), 30)
        return timedelta(seconds=min(self.cap, self.base * (2**exponent)))


@dataclass
class RunReport:
    """What one :meth:`OutboxWorker.run_once` did."""

    applied: int = 0
    retried: int = 0
    failed: int = 0


async def enqueue(
    session: AsyncSession,
    interaction_key: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> QueuedEntry:
    """Add a write to the outbox in the caller's transaction; it gets the next ``seq`` of its key.

    Two transactions enqueueing for the same key at once collide on UNIQUE(interaction_key, seq): the
    loser's commit fails and it must retry, so the order stays total per key. One INSERT … SELECT
    numbers the entry: no round trip to read the key's last ``seq`` first.
    """
    entry = await _insert(session, _INSERT_NEXT, interaction_key, kind, payload, now)
    assert entry is not None  # unconditional: the row was added
    return entry


async def enqueue_if_decided(
    session: AsyncSession,
    interaction_key: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> QueuedEntry | None:
    """:func:`enqueue` when a Decision is stored for ``interaction_key``, in the same statement; None
    (nothing added) when none is."""
    return await _insert(session, _INSERT_NEXT_IF_DECIDED, interaction_key, kind, payload, now)


@dataclass(frozen=True)
class QueuedEntry:
    """The entry :func:`enqueue` added (a plain record: on the call path, an ORM object per entry costs
    more than its INSERT)."""

    id: int
    interaction_key: str
    seq: int
    kind: str


async def _insert(
    session: AsyncSession, statement: Any, interaction_key: str, kind: str, payload: Mapping[str, Any],
    now: datetime | None,
) -> QueuedEntry | None:
    now = now or utcnow()
    row = (await session.execute(statement, {
        "new_interaction_key": interaction_key, "new_kind": kind, "new_payload": dict(payload),
        "new_status": PENDING, "new_attempts": 0, "new_next_attempt_at": now, "new_last_error": None,
        "new_created_at": now, "new_applied_at": None,
    })).first()
    if row is None:
        return None
    return QueuedEntry(id=row.id, interaction_key=interaction_key, seq=row.seq, kind=kind)


_ENTRY_COLUMNS = ("interaction_key", "kind", "payload", "status", "attempts", "next_attempt_at", "last_error",
                  "created_at", "applied_at")


def _insert_next(*, if_decided: bool) -> Any:
    """INSERT an entry with seq = (its key's last seq) + 1; with `if_decided`, only when the key has a
    Decision. Built once: on the call path, building a statement costs more than running it."""
    # Core, not the ORM entity: an ORM INSERT with a dict of values would be a bulk insert of that dict.
    table, decisions = cast(Table, OutboxEntry.__table__), cast(Table, Decision.__table__)
    key = bindparam("new_interaction_key", type_=table.c.interaction_key.type)
    next_seq = (
        select((func.coalesce(func.max(table.c.seq), 0) + 1).label("seq"))
        .where(table.c.interaction_key == key)
        .subquery("next_seq")
    )
    chosen = select(
        *(bindparam(f"new_{name}", type_=table.c[name].type).label(name) for name in _ENTRY_COLUMNS),
        next_seq.c.seq,
    ).select_from(next_seq)
    if if_decided:
        chosen = chosen.where(exists().where(decisions.c.interaction_key == key))
    return insert(table).from_select([*_ENTRY_COLUMNS, "seq"], chosen).returning(table.c.id, table.c.seq)


_INSERT_NEXT = _insert_next(if_decided=False)
_INSERT_NEXT_IF_DECIDED = _insert_next(if_decided=True)


async def apply_plan(
    session: AsyncSession, plan: LinkPlan, context: PlanContext, *, now: datetime | None = None
) -> QueuedEntry:
    """Queue the writes a LinkPlan implies; the worker carries them out once (C2)."""
    payload = {"plan": plan.to_dict(), "context": context.to_dict()}
    return await enqueue(session, plan.interaction_key, LINK_PLAN, payload, now=now)


async def requeue_failed(session: AsyncSession, interaction_key: str, *, now: datetime | None = None) -> int:
    """Put an interaction's failed entries back in the queue (after an operator fixed the cause)."""
    result = await session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.interaction_key == interaction_key, OutboxEntry.status == FAILED)
        .values(status=PENDING, next_attempt_at=now or utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _due(*columns: Any, lock: bool) -> Any:
    """Pending entries due at ``:now`` with no unfinished earlier entry of their key, ``:limit`` of them,
    with `lock` claimed FOR UPDATE SKIP LOCKED. Built once (see :func:`_insert_next`)."""
    earlier = aliased(OutboxEntry)
    blocked = exists().where(
        earlier.interaction_key == OutboxEntry.interaction_key,
        earlier.seq < OutboxEntry.seq,
        earlier.status != DONE,
    )
    now = bindparam("now", type_=OutboxEntry.__table__.c.next_attempt_at.type)
    statement = (
        select(*columns)
        .where(OutboxEntry.status == PENDING, OutboxEntry.next_attempt_at <= now, ~blocked)
        .order_by(OutboxEntry.id)
        .limit(bindparam("limit"))
    )
    return statement.with_for_update(skip_locked=True) if lock else statement


_DUE = _due(OutboxEntry, lock=True)
_DUE_IDS = _due(OutboxEntry.id, lock=False)
_MARK_DONE = (
    update(OutboxEntry)
    .where(OutboxEntry.id.in_(bindparam("ids", expanding=True)))
    .values(status=DONE, attempts=OutboxEntry.attempts + 1, applied_at=bindparam("now"), last_error=None)
    .execution_options(synchronize_session=False)
)


def _permanent(exc: Exception) -> bool:
    """A failure retrying cannot fix: a malformed entry, or the CRM refused the request as written."""
    return isinstance(exc, PermanentOutboxError | CrmError)


@dataclass
class _BatchOutcome:
    """What is left of a batch: entries to apply one by one (`redo`), and the entry whose own write
    failed with `error` (recorded as its attempt rather than tried again)."""

    redo: list[int]
    failed_id: int | None = None
    error: Exception | None = None


class OutboxWorker:
    """Applies pending outbox entries through a CRM backend, once and in order per interaction key."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: CrmBackend,
        *,
        handlers: Mapping[str, Handler] | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        batch: int = 100,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._backend = backend
        self._handlers: Mapping[str, Handler] = handlers if handlers is not None else HANDLERS
        # Handlers of one's own replace the built-in ones one entry at a time: no batch version of theirs.
        self._batch_handlers: Mapping[str, BatchHandler] = (
            batch_handlers if batch_handlers is not None else BATCH_HANDLERS if handlers is None else {}
        )
        self._backoff = backoff or Backoff()
        self._max_attempts = max_attempts
        self._batch = batch
        # Only writes made in the session can be rolled back with a batch that failed (see run_once).
        self._batches = bool(getattr(backend, "writes_in_session", False))
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask :meth:`run_forever` to look at the outbox now instead of at the next poll."""
        self._wake.set()

    async def run_once(self, now: datetime | None = None) -> RunReport:
        """Apply every entry due at ``now`` (later entries of a key follow as soon as their turn comes).

        With a backend that writes in the session (the built-in CRM), due entries are applied a batch at
        a time in one transaction. When one of them fails the batch is rolled back: that entry's failure
        is recorded as its attempt, and the others are applied one by one, each in its own transaction,
        as every entry is with a backend whose writes happen elsewhere (a write there cannot be rolled
        back, so it is never made twice).
        """
        now = now or utcnow()
        report = RunReport()
        seen: set[int] = set()
        while True:
            if self._batches:
                outcome = await self._apply_batch(now, seen, report)
            else:
                outcome = await self._next_ids(now, seen)
            if outcome is None:
                return report
            for entry_id in outcome.redo:
                if entry_id == outcome.failed_id and outcome.error is not None:
                    await self._record_failure(entry_id, now, outcome.error, permanent=_permanent(outcome.error),
                                               report=report)
                else:
                    await self._process(entry_id, now, report)

    async def _next_ids(self, now: datetime, seen: set[int]) -> _BatchOutcome | None:
        async with self._sessionmaker() as session:
            ids = [i for i in (await session.scalars(_DUE_IDS, {"now": now, "limit": self._batch})).all() if i not in seen]
        seen.update(ids)
        return _BatchOutcome(redo=ids) if ids else None

    async def run_forever(
        self, *, poll_interval: float = 1.0, stop: asyncio.Event | None = None, gather: float = 0.02
    ) -> None:
        """Run :meth:`run_once` until ``stop`` is set, polling every ``poll_interval`` seconds or on wake.

        A wake is followed by `gather` seconds of waiting: under load the calls of those milliseconds
        are applied in one batch instead of one scan and one transaction each."""
        stop = stop or asyncio.Event()
        failing = False
        while not stop.is_set():
            # Cleared before the pass, so a wake() during the pass triggers another one at once.
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:  # the database itself failed: keep the worker alive and try again later
                # Once per outage, not once per poll: a database down for minutes would bury the log.
                if not failing:
                    log.exception("outbox run failed; retrying every %.1fs until it works", poll_interval)
                failing = True
            else:
                if failing:
                    log.info("outbox runs again")
                failing = False
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            done, pending = await asyncio.wait(
                waiters, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if done and gather > 0 and not stop.is_set():
                await asyncio.sleep(gather)

    async def _apply_batch(self, now: datetime, seen: set[int], report: RunReport) -> _BatchOutcome | None:
        """Apply the next batch of due entries in one transaction. None: nothing was due."""
        ids: list[int] = []
        current: int | None = None
        try:
            async with self._sessionmaker() as session, session.begin():
                due = (await session.scalars(_DUE, {"now": now, "limit": self._batch})).all()
                entries = [entry for entry in due if entry.id not in seen]
                if not entries:
                    return None
                ids = [entry.id for entry in entries]
                seen.update(ids)
                # Only an entry of each interaction is due at a time, so the batch's entries are
                # independent: each kind's entries are applied together where a batch handler exists.
                kinds: dict[str, list[OutboxEntry]] = {}
                for entry in entries:
                    kinds.setdefault(entry.kind, []).append(entry)
                for kind, group in kinds.items():
                    many = self._batch_handlers.get(kind)
                    if many is not None and len(group) > 1:
                        current = None  # which entry failed is not known: each is tried on its own
                        await many(session, self._backend, group)
                        continue
                    for entry in group:
                        current = entry.id
                        handler = self._handlers.get(entry.kind)
                        if handler is None:
                            raise PermanentOutboxError(f"no handler for outbox entry kind {entry.kind!r}")
                        await handler(session, self._backend, entry)
                current = None  # a failure from here on (the commit) is no one entry's
                await session.execute(_MARK_DONE, {"ids": ids, "now": now})
        except Exception as exc:
            if not ids:
                raise  # the database failed before any entry was taken: run_forever logs and retries
            return _BatchOutcome(redo=ids, failed_id=current, error=exc if current is not None else None)
        report.applied += len(ids)
        return _BatchOutcome(redo=[])

    async def _process(self, entry_id: int, now: datetime, report: RunReport) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                entry = await session.scalar(
                    select(OutboxEntry)
                    .where(OutboxEntry.id == entry_id, OutboxEntry.status == PENDING)
                    .with_for_update(skip_locked=True)
                )
                if entry is None:  # another worker took it or finished it
                    return
                handler = self._handlers.get(entry.kind)
                if handler is None:
                    raise PermanentOutboxError(f"no handler for outbox entry kind {entry.kind!r}")
                await handler(session, self._backend, entry)
                entry.status = DONE
                entry.attempts += 1
                entry.applied_at = now
                entry.last_error = None
            report.applied += 1
        except Exception as exc:  # any failure of the write: record it, retry later (C4)
            await self._record_failure(entry_id, now, exc, permanent=_permanent(exc), report=report)

    async def _record_failure(
        self, entry_id: int, now: datetime, exc: Exception, *, permanent: bool, report: RunReport
    ) -> None:
        async with self._sessionmaker() as session, session.begin():
            entry = await session.get(OutboxEntry, entry_id, with_for_update=True)
            if entry is None or entry.status != PENDING:
                return
            entry.attempts += 1
            entry.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            give_up = permanent or (self._max_attempts is not None and entry.attempts >= self._max_attempts)
            if give_up:
                entry.status = FAILED
                report.failed += 1
                log.error("outbox entry %s (%s) failed for good: %s", entry_id, entry.kind, entry.last_error)
            else:
                entry.next_attempt_at = now + self._backoff.delay(entry.attempts)
                report.retried += 1
                log.warning(
                    "outbox entry %s (%s) attempt %d failed, next at %s: %s",
                    entry_id,
                    entry.kind,
                    entry.attempts,
                    entry.next_attempt_at.isoformat(),
                    entry.last_error,
                )
