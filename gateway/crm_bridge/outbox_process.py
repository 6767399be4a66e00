"""The outbox worker in a process of its own: CRM writes applied on the other core, off the SIP loop.

Applying the outbox (leads, contacts, activities through the ORM) is most of a call's CPU on the CRM
path. In the gateway's process it competes with SIP for the one interpreter lock, and a batch of
writes stalls the SIP loop. `OutboxProcess` runs the same `OutboxWorker` in a child process on the
same database: the outbox is the database's (SPEC C4), so nothing but the wake-ups crosses over.

The parent wakes the child through the child's stdin (one byte, coalesced per loop turn); the child
stops at the end of its stdin, so a parent that dies (even `kill -9`) takes it along. A child that dies
is started again after `RESTART_DELAY`: nothing is lost, the entries wait in the outbox meanwhile.

Run as `python -m gateway.crm_bridge.outbox_process` with the database URL in the environment
(`GATEWAY_OUTBOX_DATABASE_URL`, never on the command line: it may hold a password).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

URL_VARIABLE = "GATEWAY_OUTBOX_DATABASE_URL"
LEVEL_VARIABLE = "GATEWAY_OUTBOX_LOG_LEVEL"
RESTART_DELAY = 1.0
STOP_WAIT = 5.0


class OutboxProcess:
    """Starts, wakes, restarts and stops the child process that applies the outbox."""

    def __init__(self, database_url: str, *, log_level: str = "INFO") -> None:
        self._url = database_url
        self._log_level = log_level
        self._child: asyncio.subprocess.Process | None = None
        self._wake_queued = False
        self.restarts = 0

    def wake(self) -> None:
        """Ask the child to look at the outbox now (one write per loop turn however many wakes)."""
        if self._wake_queued:
            return
        self._wake_queued = True
        asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_queued = False
        child = self._child
        if child is None or child.stdin is None or child.returncode is not None:
            return
        if child.stdin.transport.get_write_buffer_size():
            return  # a wake not yet read is on its way: a child that reads slowly gets no growing buffer
        with contextlib.suppress(ConnectionError, RuntimeError):
            child.stdin.write(b"w")

    async def run_forever(self, *, stop: asyncio.Event) -> None:
        """Keep a child running until `stop`, then end it (its stdin closes; it finishes its pass)."""
        while not stop.is_set():
            child = self._child = await self._start()
            stopped = asyncio.ensure_future(stop.wait())
            exited = asyncio.ensure_future(child.wait())
            await asyncio.wait({stopped, exited}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not exited.done():
                exited.cancel()
                await self._end(child)
                return
            log.warning("the outbox worker process exited (%s); starting it again in %.0f s",
                        child.returncode, RESTART_DELAY)
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_DELAY)

    async def _start(self) -> asyncio.subprocess.Process:
        env = {**os.environ, URL_VARIABLE: self._url, LEVEL_VARIABLE: self._log_level}
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE, env=env,
        )

    async def _end(self, child: asyncio.subprocess.Process) -> None:
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), STOP_WAIT)
        except TimeoutError:
            log.warning("the outbox worker process did not stop within %.0f s; killing it", STOP_WAIT)
            child.kill()
            await child.wait()


async def _serve(url: str) -> None:
    # Imported here: the parent imports this module for OutboxProcess alone.
    from gateway.crm_bridge.outbox import OutboxWorker
    from gateway.crm_bridge.store import BuiltinCrm
    from gateway.storage.session import make_call_path_engine, make_sessionmaker

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = make_call_path_engine(url)
    worker = OutboxWorker(make_sessionmaker(engine), BuiltinCrm())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wakes() -> None:
        while await reader.read(4096):
            worker.wake()
        stop.set()  # the parent closed our stdin, or died
        worker.wake()

    listening = loop.create_task(wakes())
    try:
        await worker.run_forever(stop=stop)
    finally:
        listening.cancel()
        await engine.dispose()


def main() -> int:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        print(f"{__name__}: {URL_VARIABLE} is not set (the gateway starts this process itself)", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get(LEVEL_VARIABLE, "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[outbox]: %(message)s")
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(_serve(url))
    else:
        uvloop.run(_serve(url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
