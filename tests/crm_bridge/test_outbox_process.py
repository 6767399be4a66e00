"""The outbox worker's own process (`gateway.crm_bridge.outbox_process`): started, woken, restarted, stopped.

A real child process on a real (SQLite) database. That it applies the CRM writes is what every live
test of `gateway run` shows (leads, activities), since the gateway runs it by default.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from gateway.crm_bridge import outbox_process
from gateway.crm_bridge.outbox_process import OutboxProcess
from gateway.storage.session import upgrade_database


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    upgrade_database(url)
    return url


async def _until(predicate, seconds: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_c4_a_dead_outbox_worker_process_is_started_again_and_stopped_with_the_gateway(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_process, "RESTART_DELAY", 0.1)
    process = OutboxProcess(database_url, log_level="WARNING")
    stop = asyncio.Event()
    running = asyncio.get_running_loop().create_task(process.run_forever(stop=stop))
    await _until(lambda: process._child is not None and process._child.returncode is None)
    first = process._child
    assert first is not None
    process.wake()  # a wake reaches a live child without harm
    await asyncio.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    await _until(lambda: process.restarts == 1 and process._child is not first and process._child is not None)
    second = process._child
    assert second is not None and second.returncode is None
    stop.set()
    await asyncio.wait_for(running, 10)
    assert second.returncode == 0  # ended by its closed stdin, not killed


async def test_a_writer_process_that_keeps_dying_at_start_is_started_again_less_and_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_process, "RESTART_DELAY", 0.05)
    monkeypatch.setattr(outbox_process, "MAX_RESTART_DELAY", 0.2)
    process = OutboxProcess("", log_level="WARNING")  # no database: each child exits at once
    stop = asyncio.Event()
    running = asyncio.get_running_loop().create_task(process.run_forever(stop=stop))
    delays = []
    for restarts in range(1, 5):
        await _until(lambda restarts=restarts: process.restarts >= restarts)  # type: ignore[misc]
        delays.append(process.restart_delay)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert delays == [0.05, 0.1, 0.2, 0.2]


async def test_c4_the_outbox_worker_process_ends_when_its_gateway_goes_away(database_url: str) -> None:
    """A gateway killed with -9 closes the child's stdin with it: the child must not outlive it."""
    process = OutboxProcess(database_url, log_level="WARNING")
    child = await process._start()
    await asyncio.sleep(1.0)  # let it start its loop
    assert child.returncode is None and child.stdin is not None
    child.stdin.close()  # what the kernel does when the gateway dies
    assert await asyncio.wait_for(child.wait(), 10) == 0


async def test_the_outbox_worker_process_refuses_to_start_without_its_database() -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", outbox_process.CHILD_MODULE, stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 2 and b"no database URL on stdin" in err


async def test_the_database_url_reaches_the_writer_on_its_stdin_not_in_its_environment(database_url: str) -> None:
    """The URL may hold a password: /proc/<pid>/environ (and every child the writer might start) must
    not show it. The writer still reaches the database: it says it is ready."""
    process = OutboxProcess(database_url, log_level="WARNING")
    child = await process._start()
    try:
        assert child.stdout is not None
        assert b'"ready"' in await asyncio.wait_for(child.stdout.readline(), 30)
        environment = await asyncio.to_thread(Path(f"/proc/{child.pid}/environ").read_bytes)
        assert database_url.encode() not in environment
    finally:
        assert child.stdin is not None
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 10)


def test_a_database_url_of_more_than_one_line_is_refused() -> None:
    with pytest.raises(ValueError, match="one line"):
        outbox_process.url_line("sqlite:///a.db\nother")


async def test_the_gateway_keeps_reading_its_writer_after_a_message_it_cannot_handle() -> None:
    """A child whose stdout nobody reads blocks on its next report: garbage, a non-object or a message
    whose handling fails must not stop the reading."""
    from types import SimpleNamespace

    process = OutboxProcess("sqlite+aiosqlite:///unused.db")
    handled: list[dict[str, object]] = []

    def on_message(message: dict[str, object]) -> None:
        if message.get("retries") == "many":
            raise ValueError("not a count")
        handled.append(message)

    process.connect(on_message=on_message, on_started=lambda: None)
    stdout = asyncio.StreamReader()
    for line in (b"not json\n", b"[1, 2]\n", b'{"retries": "many"}\n', b'{"ready": true}\n', b'{"done": "c1"}\n'):
        stdout.feed_data(line)
    stdout.feed_eof()
    await asyncio.wait_for(process._read(SimpleNamespace(stdout=stdout)), 5)  # type: ignore[arg-type]
    assert handled == [{"ready": True}, {"done": "c1"}] and process.ready.is_set()
