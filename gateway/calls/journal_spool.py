"""The call journal's side of its spool: records written first, a replay after a crash, back-pressure.

`CallJournal` is a `SpooledJournal`: each event's record goes to the `CallSpool` before its job is queued
(`_event`); `replay()` queues the jobs of the calls a previous run left unwritten; beyond `memory_calls`
calls with writes waiting, a call's jobs are not queued ("spilled": its records wait in the spool only)
and are read back, oldest first, once the backlog is under half the cap (`_read_back`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.calls.journal_forward import ForwardedWork
from gateway.calls.journal_records import (
    ENDED,
    INTERRUPTED_NOTE,
    ROUTED,
    SEEN,
    RoutedCall,
    interrupted_end,
    spooled_call,
    utcnow,
)
from gateway.calls.keyed_work import KeyedWork
from gateway.calls.spool import CallSpool, SpooledCall, record_line

log = logging.getLogger("gateway.calls.journal")


class SpooledJournal:
    """The spool half of `CallJournal` (which provides `_submit_routed` and `_submit`)."""

    work: KeyedWork
    on_finished: Callable[[str], None]
    spool: CallSpool | None
    memory_calls: int
    _calls: dict[str, RoutedCall]
    _spilled: dict[str, None]
    _restarted_at: datetime

    @property
    def pending(self) -> KeyedWork | ForwardedWork:
        raise NotImplementedError

    def _submit_routed(self, call: RoutedCall, line: bytes | None = None) -> None:
        raise NotImplementedError

    def _submit(self, call: RoutedCall, kind: str, data: dict[str, Any], line: bytes | None = None) -> None:
        raise NotImplementedError

    # -- what waits (the metrics' `PendingWork`) -----------------------------------------------
    def __len__(self) -> int:
        """Writes waiting in memory, plus one per call whose writes wait in the spool only."""
        return len(self.pending) + len(self._spilled)

    @property
    def retries(self) -> int:
        return self.pending.retries

    @property
    def failures(self) -> int:
        return self.pending.failures

    @property
    def spilled(self) -> int:
        return len(self._spilled)

    # -- the spool: every record written there first, then (unless spilled) queued -------------------
    def _spool(self, call_id: str, kind: str, data: dict[str, Any]) -> bytes | None:
        """Write the record to the spool; the line written (the writer process reads the same format:
        `_submit` forwards it as it is), None without a spool."""
        if self.spool is None:
            return None
        line = record_line(call_id, kind, data)
        try:
            self.spool.append_line(call_id, line)
        except OSError as error:
            # A full disk must not stop calls; the write still waits in memory (a crash would lose it).
            log.error("call %s: not spooled (%s); its writes are held in memory only", call_id, error)
        return line

    def _event(self, call: RoutedCall, kind: str, data: dict[str, Any]) -> None:
        line = self._spool(call.call_id, kind, data)
        if call.call_id not in self._spilled:
            self._submit(call, kind, data, line)

    def replay(self, calls: list[SpooledCall], restarted_at: datetime | None = None) -> int:
        """Queue the writes of the calls a previous run left in the spool (`CallSpool.open()`), in the
        order they came; a call with no end is ended as interrupted at `restarted_at` (now)."""
        self._restarted_at = restarted_at or utcnow()
        for spooled in calls:
            if self._spilled or self.pending.keys >= self.memory_calls:
                self._spilled[spooled.call_id] = None
            else:
                self._resume(spooled)
        return len(calls)

    def _resume(self, spooled: SpooledCall) -> None:
        """Queue a spooled call's writes: a call still up keeps its live state (and its router's CRM
        decision); a call that is over is rebuilt from its records."""
        live = self._calls.get(spooled.call_id)
        call = live or spooled_call(spooled.records)
        if call is None:  # never routed (only an answer survived?): nothing to log
            if self.spool is not None:
                self.spool.done(spooled.call_id)
            return
        ended = any(kind == ENDED for kind, _ in spooled.records)
        if live is None and not ended and call.routing is not None:
            call.routing = {**call.routing, "notes": [*call.routing.get("notes", []), INTERRUPTED_NOTE]}
        self._submit_routed(call)
        for kind, data in spooled.records:
            if kind not in (SEEN, ROUTED):
                self._submit(call, kind, data)
        if live is None and not ended:
            last_alive = self.spool.last_written if self.spool is not None else None
            end = interrupted_end(spooled.records, self._restarted_at, last_alive)
            self._submit(call, ENDED, end.encode())

    async def _finished(self, call_id: str) -> None:
        if self.spool is not None:
            self.spool.done(call_id)
        self.on_finished(call_id)
        # Once this job returns its key is gone: the backlog is measured without it.
        asyncio.get_running_loop().call_soon(self._read_back)

    def _read_back(self) -> None:
        """Move spilled calls back into memory, oldest first, once the backlog is under half the cap."""
        room = self.memory_calls - self.pending.keys
        if not self._spilled or self.spool is None or room < self.memory_calls / 2:
            return
        batch = list(self._spilled)[:room]
        for call_id in batch:
            del self._spilled[call_id]
        found = {spooled.call_id: spooled for spooled in self.spool.records(batch)}
        for call_id in batch:
            spooled = found.get(call_id)
            if spooled is not None:
                self._resume(spooled)
