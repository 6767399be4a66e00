"""One transaction for the writes of many call-journal jobs (group commit), in the writer process.

Every call writes its call-log row three or four times (start, answer, end) and each write was its own
transaction. On SQLite a commit rewrites every page it touched into the WAL: a call row's routing record
(several KB), its table's leaf and index pages, once per commit. Jobs that run within a few milliseconds
of each other now share one transaction: each job's writes run alone in the shared session (a lock), the
session commits `gather` seconds after its first job (or once `max_jobs` joined), and each job returns
only once that commit is done, so what it does after its transaction (telling the gateway its call is
written, waking the outbox) still follows a durable write. With `quiet`, a group also commits once no job
has joined it for that long: under load the groups grow to `gather`, while a lone call's writes are
visible (in the call log, to the card's actions) a moment after they are made.

A job that fails inside the transaction rolls the group back: its own error reaches it, and every other
job of the group gets :class:`GroupRolledBack`, a retryable error (its KeyedWork runs it again, in a later
group). A failed commit does the same for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)


class GroupRolledBack(Exception):
    """The shared transaction this job's writes were in was rolled back (another job failed, or the
    commit did): nothing of it was written, and the job may simply run again."""


@dataclass(eq=False)
class _Group:
    session: AsyncSession
    done: asyncio.Future[None]
    opened: float
    joined: float  # when the last job joined
    jobs: int = 0
    timer: asyncio.TimerHandle | None = field(default=None)


class GroupCommit:
    """Hands jobs a shared session; see the module's doc."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, gather: float = 0.01, max_jobs: int = 64,
        quiet: float | None = None,
    ) -> None:
        if quiet is not None and not 0 < quiet <= gather:
            raise ValueError(f"quiet must be a positive number of seconds up to gather ({gather}); got {quiet!r}")
        self._sessionmaker = sessionmaker
        self._gather = gather
        self._quiet = quiet
        self._max_jobs = max_jobs
        self._lock = asyncio.Lock()
        self._group: _Group | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.commits = 0  # how many groups were committed (tests, metrics)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The shared session, for one job's writes; returns once they are committed (raises
        GroupRolledBack when the group was rolled back). Never nested: the session is the job's alone
        until its block ends."""
        async with self._lock:
            group = self._group
            if group is None:
                group = self._open()
            group.jobs += 1
            group.joined = asyncio.get_running_loop().time()
            try:
                yield group.session
            except BaseException:
                await self._end(group, commit=False)
                raise
            if group.jobs >= self._max_jobs:
                await self._end(group, commit=True)
        # Shielded: a job cancelled while it waits must not cancel the commit the others wait for.
        await asyncio.shield(group.done)

    def _open(self) -> _Group:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        # A group whose only job failed has nobody left to read its outcome: read it here.
        done.add_done_callback(lambda future: future.cancelled() or future.exception())
        now = loop.time()
        group = self._group = _Group(self._sessionmaker(), done, opened=now, joined=now)
        group.timer = loop.call_later(self._quiet or self._gather, self._due, group)
        return group

    def _due(self, group: _Group) -> None:
        """The group's timer: it closes once `gather` passed since it opened, or `quiet` since its last
        job joined; else the timer is set again for whichever comes first."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        left = group.opened + self._gather - now
        if self._quiet is not None:
            left = min(left, group.joined + self._quiet - now)
        if left > 0:
            group.timer = loop.call_later(left, self._due, group)
            return
        self._close_soon(group)

    def _close_soon(self, group: _Group) -> None:
        task = asyncio.get_running_loop().create_task(self._close(group))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, group: _Group) -> None:
        async with self._lock:
            if self._group is group:
                await self._end(group, commit=True)

    async def _end(self, group: _Group, *, commit: bool) -> None:
        self._group = None
        if group.timer is not None:
            group.timer.cancel()
        error: BaseException | None = None
        try:
            if commit:
                await group.session.commit()
        except Exception as failure:
            error = failure
            log.warning("a group of %d journal writes was not committed (%s); each is tried again",
                        group.jobs, type(failure).__name__)
        finally:
            try:
                await group.session.close()  # rolls back what was not committed
            except Exception as failure:  # the jobs waiting for this group must hear of it all the same
                error = error or failure
        if commit and error is None:
            self.commits += 1
            group.done.set_result(None)
        else:
            rolled_back = GroupRolledBack(f"rolled back with the {group.jobs} writes it held")
            rolled_back.__cause__ = error
            group.done.set_exception(rolled_back)
