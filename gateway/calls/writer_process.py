"""The writer process's side (`python -m gateway.calls.writer_process`): the outbox worker and the call
journal's jobs, fed by the gateway's process (`gateway.crm_bridge.outbox_process.OutboxProcess`).

It reads journal records and wakes on its stdin and answers on its stdout (`gateway.calls.journal_forward`
says what); it stops at the end of its stdin, once the jobs it was sent are done (at most `STOP_WAIT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from gateway.calls.directory import RoutingDirectory
from gateway.calls.group_commit import GroupCommit
from gateway.calls.journal import CallJournal
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.outbox_process import (
    LEVEL_VARIABLE,
    LINE_LIMIT,
    REALM_VARIABLE,
    STOP_WAIT,
)
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.session import make_call_path_engine, make_sessionmaker

log = logging.getLogger(__name__)
NICENESS = 5
#: How long a group commit gathers jobs at most, how many it takes at most, and how long it waits for
#: another. Each commit writes every page its jobs touched into the WAL once (the call rows, the
#: outbox, their indexes): fewer, larger commits cut the writer's CPU per call (at 500 calls/s: 73 % at
#: 10 ms / 64 jobs, 64 % at 50 ms / 512). Under load a group grows to GROUP_GATHER; a lone call's
#: writes are committed GROUP_QUIET after its last job (the card's actions need its call-log row).
GROUP_GATHER, GROUP_MAX_JOBS, GROUP_QUIET = 0.05, 512, 0.01


class _Reports:
    """The child's messages to the gateway, written together once per loop turn."""

    def __init__(self, journal: CallJournal) -> None:
        self._journal = journal
        self._lines: list[bytes] = []
        self._queued = False
        self._counters = (0, 0)
        journal.on_finished = lambda call_id: self.say({"done": call_id})
        journal.work.on_idle = lambda call_id: self.say({"idle": call_id})

    def say(self, message: dict[str, Any]) -> None:
        self._lines.append(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        if not self._queued:
            self._queued = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._queued = False
        counters = (self._journal.work.retries, self._journal.work.failures)
        if counters != self._counters:
            self._counters = counters
            self._lines.append(json.dumps({"retries": counters[0], "failures": counters[1]}).encode() + b"\n")
        lines, self._lines = self._lines, []
        if lines:
            # A gateway gone (even kill -9) closed the pipe: our stdin ends too, and that stops us.
            with contextlib.suppress(BrokenPipeError):
                sys.stdout.buffer.write(b"".join(lines))
                sys.stdout.buffer.flush()

    async def every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush()  # counters change while a job waits to be retried, with nothing else to say


async def _serve(url: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = make_call_path_engine(url)
    sessionmaker = make_sessionmaker(engine)
    # One engine for the outbox worker and the journal: on SQLite one connection, so they queue for it
    # instead of contending for the database's lock.
    worker = OutboxWorker(sessionmaker, BuiltinCrm())
    # The numbers' settings as the gateway's router reads them, reloaded when the gateway's are (`r`:
    # after an admin change, and every refresh).
    directory = RoutingDirectory(sessionmaker, os.environ.get(REALM_VARIABLE, ""))
    try:
        await directory.reload()
    except (SQLAlchemyError, OSError) as error:  # the journal reads the number itself meanwhile
        log.warning("numbers not loaded (%s); reading them per call until the next reload", type(error).__name__)
    # The jobs of calls up to GROUP_GATHER apart share one transaction: a commit per call row write cost
    # more than the writes themselves.
    journal = CallJournal(sessionmaker, BuiltinCrm(), wake_outbox=worker.wake, number_facts=directory.number_facts,
                          group=GroupCommit(sessionmaker, gather=GROUP_GATHER, max_jobs=GROUP_MAX_JOBS,
                                            quiet=GROUP_QUIET))
    reports = _Reports(journal)
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def listen() -> None:
        while line := await reader.readline():
            if line == b"w\n":
                worker.wake()
                continue
            if line == b"r\n":
                # Before the next record: a call routed after a change is decided on the change.
                await directory.reload_now("the gateway's numbers")
                continue
            try:
                record = orjson.loads(line)
                journal.apply_record(str(record["c"]), str(record["k"]), dict(record.get("d") or {}))
            except (ValueError, KeyError, TypeError) as error:
                log.error("a journal record could not be read (%s): %r", error, line[:200])
        # The gateway closed our stdin (it stops, or died): finish what was sent, then stop.
        await journal.work.idle(STOP_WAIT)
        journal.work.cancel()
        reports.flush()
        stop.set()
        worker.wake()

    async def listening_or_stop() -> None:
        try:
            await listen()
        except Exception:
            # Not reading stdin would leave the gateway's records piling up behind a live child: end it
            # instead; the gateway starts another and sends it every call not yet written.
            log.exception("the writer stopped reading the gateway's records")
            stop.set()
            worker.wake()

    listening = loop.create_task(listening_or_stop())
    reporting = loop.create_task(reports.every(1.0))
    reports.say({"ready": True})
    try:
        await worker.run_forever(stop=stop)
    finally:
        listening.cancel()
        reporting.cancel()
        await engine.dispose()


def _read_url() -> str:
    """The first line of stdin, read a byte at a time: a buffered read would take records meant for the
    loop's reader along with it."""
    data = bytearray()
    while not data.endswith(b"\n"):
        byte = os.read(sys.stdin.fileno(), 1)
        if not byte:
            break
        data += byte
    return data.decode(errors="replace").strip()


def main() -> int:
    # Behind SIP when both want a core: a call's setup waits for nobody, its writes may wait a little.
    os.nice(NICENESS)
    url = _read_url()
    if not url:
        print(f"{__name__}: no database URL on stdin (the gateway starts this process itself and sends it)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get(LEVEL_VARIABLE, "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[writer]: %(message)s")
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(_serve(url))
    else:
        uvloop.run(_serve(url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
