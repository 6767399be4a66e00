"""Async jobs run one after another per key (a Call-ID), each retried until it can be done.

SPEC C4: a CRM or call-log write that cannot happen now (database down, locked) is retried with
back-off, in order, never dropped; a call's end is never written before its start because both are
jobs of one key. A job that fails for any other reason is a bug: logged loudly, then skipped so the
key's later jobs still run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from gateway.calls.group_commit import GroupRolledBack

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]

#: Errors that mean "the database cannot take this now", not "this write is wrong" (GroupRolledBack: the
#: transaction it shared with other jobs was rolled back for one of them).
RETRYABLE: tuple[type[BaseException], ...] = (
    SQLAlchemyError, OSError, ConnectionError, TimeoutError, GroupRolledBack,
)


class KeyedWork:
    """One queue of jobs per key, drained by one task per busy key."""

    def __init__(self, *, first_delay: float = 0.2, max_delay: float = 10.0, concurrency: int = 4) -> None:
        """`concurrency`: how many jobs may hold a `slot` at once (see there)."""
        self._slots = asyncio.Semaphore(concurrency)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._queues: dict[str, deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.retries = 0
        self.failures = 0
        self.on_idle: Callable[[str], None] = lambda _key: None  # told each key whose queue ran empty

    @property
    def slot(self) -> asyncio.Semaphore:
        """Held by a job around each of its database transactions, never while it waits for something
        else (its turn): a database takes writes one (SQLite) or a few at a time, and more jobs at once
        would only hold connections that the calls' lookups and the outbox need."""
        return self._slots

    def __len__(self) -> int:
        """How many jobs wait or run now."""
        return sum(len(queue) for queue in self._queues.values())

    @property
    def keys(self) -> int:
        """How many keys (calls) have jobs waiting or running now."""
        return len(self._queues)

    def submit(self, key: str, job: Job) -> None:
        """Run `job` after every job already submitted for `key`."""
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = deque((job,))
        task = asyncio.get_running_loop().create_task(self._drain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await self._run(key, queue[0])
                queue.popleft()
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
                self.on_idle(key)

    async def _run(self, key: str, job: Job) -> None:
        delay = self.first_delay
        while True:
            try:
                await job()
                return
            except RETRYABLE as error:
                self.retries += 1
                log.warning("call %s: write postponed (%s); retrying in %.1f s", key, type(error).__name__, delay)
            except Exception:
                self.failures += 1
                log.exception("call %s: a journal job failed; skipped", key)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def idle(self, within: float) -> bool:
        """Wait until every queue is empty (tests, shutdown); False if `within` seconds passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    def cancel(self) -> None:
        """Give up every job (the gateway is stopping)."""
        for task in list(self._tasks):
            task.cancel()
