"""The call journal's writes made in the writer process: what the gateway's process forwards and keeps.

With `[database] outbox_process` (the default) the journal's jobs — every call's call-log rows and its
CRM decision — run in the writer process beside the outbox worker, on the other core: the SIP process
keeps the observing, the spool and the one CRM lookup of its routing. Each record the journal would
queue as a job is forwarded instead, as one JSON line in the spool's format (`{"c", "k", "d"}`), and
the writer process's own `CallJournal` queues the job (`CallJournal.apply_record`).

The writer answers with one JSON line per event: `{"idle": id}` when a call has no job left for now,
`{"done": id}` when its end is written (the spool may forget the call), `{"retries": n, "failures": n}`
when those counters change, and `{"ready": true}` once at start (`OutboxProcess.ready`). A writer that dies is started again and gets every call not done once
more, from its first record: the writes are idempotent per Call-ID (SPEC C2), as for a replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class WriterLink(Protocol):
    """The writer process as `ForwardedWork` uses it (`gateway.crm_bridge.outbox_process.OutboxProcess`)."""

    def send(self, line: bytes) -> None: ...

    def connect(self, *, on_message: Callable[[dict[str, Any]], None], on_started: Callable[[], None]) -> None: ...


class ForwardedWork:
    """Stands in for the journal's `KeyedWork` when its jobs run in the writer process: forwards each
    call's records in order and keeps them until the writer says the call is done."""

    def __init__(self, link: WriterLink) -> None:
        self._link = link
        self._records: dict[str, list[bytes]] = {}  # call not done → its records as sent, in order
        # Calls whose records the writer may still be working on: the journal's measure of its backlog
        # (`keys`, for its memory cap). An "idle" crossing a newer record makes it undercount briefly.
        self._busy: set[str] = set()
        self.retries = 0
        self.failures = 0
        self.on_done: Callable[[str], None] = lambda _call_id: None
        self._idle = asyncio.Event()
        self._idle.set()
        link.connect(on_message=self._message, on_started=self._resend)

    def __len__(self) -> int:
        return len(self._busy)

    @property
    def keys(self) -> int:
        return len(self._busy)

    @property
    def calls(self) -> int:
        """Calls forwarded and not yet done."""
        return len(self._records)

    def forward(self, call_id: str, line: bytes) -> None:
        """Send one record of `call_id`, as the spool's line (`gateway.calls.spool.record_line`)."""
        self._records.setdefault(call_id, []).append(line)
        self._busy.add(call_id)
        self._idle.clear()
        self._link.send(line)

    def _resend(self) -> None:
        """A writer (re)started: every call not done, each from its first record."""
        if self._records:
            log.info("call journal: sending %d calls not yet written to the writer process", len(self._records))
        self._busy = set(self._records)
        if self._busy:
            self._idle.clear()
        for lines in self._records.values():
            for line in lines:
                self._link.send(line)

    def _message(self, message: dict[str, Any]) -> None:
        if "done" in message:
            call_id = str(message["done"])
            self._busy.discard(call_id)
            if self._records.pop(call_id, None) is not None:
                self.on_done(call_id)
        elif "idle" in message:
            self._busy.discard(str(message["idle"]))
        if "retries" in message:
            self.retries = int(message["retries"])
            self.failures = int(message.get("failures") or 0)
        if not self._busy:
            self._idle.set()

    async def idle(self, within: float) -> bool:
        """Until the writer has no job left for any call (shutdown, tests): every record forwarded is
        written, calls still up included. False if `within` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def cancel(self) -> None:
        """Nothing runs here: what the writer did not finish stays in the spool for the next start."""
