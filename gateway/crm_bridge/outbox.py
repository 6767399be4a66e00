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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from gateway.crm_bridge.backend import CrmBackend, CrmError
from gateway.crm_bridge.linking import LinkPlan
from gateway.crm_bridge.service import HANDLERS, LINK_PLAN, PermanentOutboxError, PlanContext
from gateway.storage.models import OutboxEntry

__all__ = [
    "Backoff",
    "Handler",
    "OutboxWorker",
    "PermanentOutboxError",
    "RunReport",
    "apply_plan",
    "enqueue",
    "requeue_failed",
    "utcnow",
]

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"

#: How an entry kind is applied: ``handler(session, backend, entry)``; raising means "retry later".
Handler = Callable[[AsyncSession, CrmBackend, OutboxEntry], Awaitable[None]]


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
) -> OutboxEntry:
    """Add a write to the outbox in the caller's transaction; it gets the next ``seq`` of its key.

    Two transactions enqueueing for the same key at once collide on UNIQUE(interaction_key, seq): the
    loser's commit fails and it must retry, so the order stays total per key.
    """
    now = now or utcnow()
    last = await session.scalar(
        select(func.max(OutboxEntry.seq)).where(OutboxEntry.interaction_key == interaction_key)
    )
    entry = OutboxEntry(
        interaction_key=interaction_key,
        seq=(last or 0) + 1,
        kind=kind,
        payload=dict(payload),
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        last_error=None,
        created_at=now,
        applied_at=None,
    )
    session.add(entry)
    await session.flush()
    return entry


async def apply_plan(
    session: AsyncSession, plan: LinkPlan, context: PlanContext, *, now: datetime | None = None
) -> OutboxEntry:
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


def _eligible(now: datetime, limit: int) -> Any:
    """Pending entries that are due and have no unfinished earlier entry of their key."""
    earlier = aliased(OutboxEntry)
    blocked = exists().where(
        earlier.interaction_key == OutboxEntry.interaction_key,
        earlier.seq < OutboxEntry.seq,
        earlier.status != DONE,
    )
    return (
        select(OutboxEntry.id)
        .where(OutboxEntry.status == PENDING, OutboxEntry.next_attempt_at <= now, ~blocked)
        .order_by(OutboxEntry.id)
        .limit(limit)
    )


class OutboxWorker:
    """Applies pending outbox entries through a CRM backend, once and in order per interaction key."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: CrmBackend,
        *,
        handlers: Mapping[str, Handler] | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        batch: int = 100,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._backend = backend
        self._handlers: Mapping[str, Handler] = handlers if handlers is not None else HANDLERS
        self._backoff = backoff or Backoff()
        self._max_attempts = max_attempts
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask :meth:`run_forever` to look at the outbox now instead of at the next poll."""
        self._wake.set()

    async def run_once(self, now: datetime | None = None) -> RunReport:
        """Apply every entry due at ``now`` (later entries of a key follow as soon as their turn comes)."""
        now = now or utcnow()
        report = RunReport()
        seen: set[int] = set()
        while True:
            async with self._sessionmaker() as session:
                ids = [i for i in (await session.scalars(_eligible(now, self._batch))).all() if i not in seen]
            if not ids:
                return report
            for entry_id in ids:
                seen.add(entry_id)
                await self._process(entry_id, now, report)

    async def run_forever(self, *, poll_interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
        """Run :meth:`run_once` until ``stop`` is set, polling every ``poll_interval`` seconds or on wake."""
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
            _, pending = await asyncio.wait(
                waiters, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

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
            # A CrmError means the CRM refused the request as written: retrying would not change that.
            permanent = isinstance(exc, PermanentOutboxError | CrmError)
            await self._record_failure(entry_id, now, exc, permanent=permanent, report=report)

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
