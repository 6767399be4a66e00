"""The writer process: the outbox worker and the call journal's jobs, on the other core, off the SIP loop.

Applying the outbox (leads, contacts, activities through the ORM) and writing each call's call-log
rows and CRM decision are most of a call's CPU on the CRM path. In the gateway's process they compete
with SIP for the one interpreter lock, and a batch of writes stalls the SIP loop. `OutboxProcess` runs
the same `OutboxWorker`, and a `CallJournal` fed with the records the gateway's journal forwards
(`gateway.calls.journal_forward`), in a child process on the same database.

The parent writes to the child's stdin: journal records (JSON lines) and wakes (`w`); the child
answers on its stdout (what it finished, see `journal_forward`). The child stops at the end of its
stdin, after finishing the jobs it was sent, so a parent that dies (even `kill -9`) takes it along. A
child that dies is started again after `RESTART_DELAY` (doubled, up to `MAX_RESTART_DELAY`, while
children keep dying young): nothing is lost, the outbox entries wait in
the database and the calls not done are sent to the new child.

The child is `python -m gateway.calls.writer_process` (it imports the call journal, which this package
may not). The database URL is the first line its stdin gets: it may hold a password, and neither the
command line nor the environment is private (`ps`, /proc/<pid>/environ, core dumps, the child's children).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def url_line(url: str) -> bytes:
    """The child's first stdin line: the database URL."""
    if "\n" in url or "\r" in url:
        raise ValueError("the database URL must be one line")
    return url.encode() + b"\n"

LEVEL_VARIABLE = "GATEWAY_OUTBOX_LOG_LEVEL"
REALM_VARIABLE = "GATEWAY_OUTBOX_REALM"
RESTART_DELAY = 1.0  # after a child that ran well; doubled after each one that died young, up to:
MAX_RESTART_DELAY = 60.0
STABLE_RUN = 60.0  # a child that ran this long died of something new: the next start waits RESTART_DELAY
STOP_WAIT = 5.0
CHILD_MODULE = "gateway.calls.writer_process"
LINE_LIMIT = 64 << 20  # a call's record carries its routing explanation: large for a large queue group


class OutboxProcess:
    """Starts, feeds, restarts and stops the writer process (the outbox worker and the call journal's jobs)."""

    def __init__(self, database_url: str, *, log_level: str = "INFO", realm: str = "") -> None:
        """`realm`: the SIP realm (the child reads the numbers and employees as the gateway does)."""
        self._url = database_url
        self._realm = realm
        self._log_level = log_level
        self._child: asyncio.subprocess.Process | None = None
        self._lines: list[bytes] = []  # to write at the end of this loop turn, in order
        self._flush_queued = False
        self._wake_queued = False
        self._on_message: Callable[[dict[str, Any]], None] = lambda _message: None
        self._on_started: Callable[[], None] = lambda: None
        self.restarts = 0
        self.restart_delay = RESTART_DELAY
        self.ready = asyncio.Event()  # set once a child said it is ready (its first one: start-up waits for it)

    def connect(self, *, on_message: Callable[[dict[str, Any]], None], on_started: Callable[[], None]) -> None:
        """Route the child's messages to `on_message`; `on_started` runs each time a child starts, before
        anything else is sent to it (the call journal sends it the calls it has not written yet)."""
        self._on_message = on_message
        self._on_started = on_started

    def wake(self) -> None:
        """Ask the child to look at the outbox now (one wake per loop turn however many are asked)."""
        if not self._wake_queued:
            self._wake_queued = True
            self.send(b"w\n")

    def send(self, line: bytes) -> None:
        """Queue one line for the child; the turn's lines are written together. Without a child (it is
        being started again) the line is dropped: its sender sends again from `on_started`."""
        self._lines.append(line)
        if not self._flush_queued:
            self._flush_queued = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_queued = self._wake_queued = False
        lines, self._lines = self._lines, []
        child = self._child
        if child is None or child.stdin is None or child.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            child.stdin.write(b"".join(lines))

    async def run_forever(self, *, stop: asyncio.Event) -> None:
        """Keep a child running until `stop`, then end it (its stdin closes; it finishes its work)."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            child = await self._start()
            started = loop.time()
            self._child = child
            self._lines = []  # lines for a dead child: `on_started` sends what still matters
            self._on_started()
            self.wake()
            reading = asyncio.ensure_future(self._read(child))
            stopped = asyncio.ensure_future(stop.wait())
            exited = asyncio.ensure_future(child.wait())
            await asyncio.wait({stopped, exited}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not exited.done():
                exited.cancel()
                await self._end(child)
                await self._finish_reading(reading)
                return
            await self._finish_reading(reading)
            self._child = None
            # One that keeps dying at start (a database it cannot open, say) is not started every second.
            delay = self.restart_delay = (
                RESTART_DELAY if loop.time() - started >= STABLE_RUN else self._next_delay())
            log.warning("the writer process exited (%s); starting it again in %.1f s", child.returncode, delay)
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _next_delay(self) -> float:
        return RESTART_DELAY if not self.restarts else min(self.restart_delay * 2, MAX_RESTART_DELAY)

    async def _read(self, child: asyncio.subprocess.Process) -> None:
        """The child's messages, one JSON object per line, until it closes its stdout."""
        assert child.stdout is not None
        while line := await child.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("the writer process said something unexpected: %r", line[:200])
                continue
            if not isinstance(message, dict):
                log.warning("the writer process said something unexpected: %r", line[:200])
                continue
            if message.get("ready"):
                self.ready.set()
            try:
                self._on_message(message)
            except Exception:
                # Reading on matters more: a child whose stdout nobody reads blocks on its next report.
                log.exception("a message of the writer process could not be handled: %r", line[:200])

    @staticmethod
    async def _finish_reading(reading: asyncio.Future[None]) -> None:
        try:
            await asyncio.wait_for(reading, STOP_WAIT)
        except (TimeoutError, ConnectionError):
            reading.cancel()

    async def _start(self) -> asyncio.subprocess.Process:
        env = {**os.environ, LEVEL_VARIABLE: self._log_level, REALM_VARIABLE: self._realm}
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", CHILD_MODULE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env, limit=LINE_LIMIT,
        )
        assert child.stdin is not None
        child.stdin.write(url_line(self._url))  # first on the pipe: every record comes after it
        return child

    async def _end(self, child: asyncio.subprocess.Process) -> None:
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), STOP_WAIT + 2.0)
        except TimeoutError:
            log.warning("the writer process did not stop within %.0f s; killing it", STOP_WAIT + 2.0)
            child.kill()
            await child.wait()
