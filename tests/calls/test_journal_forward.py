"""The call journal's writes made in the writer process (`gateway.calls.journal_forward`): a real child
process on the test's database, fed by a journal in this process as `gateway run` wires them.

A forwarded call is written whole by the child (call log, CRM decision, lead and activity through its
outbox worker), and the spool forgets it once the child says so. A child killed in the middle of a call
is started again, gets the calls not done from their first record, and writes each once (SPEC C2/C4).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.calls.journal import CallJournal
from gateway.calls.journal_forward import ForwardedWork
from gateway.calls.journal_records import spooled_call
from gateway.calls.spool import CallSpool
from gateway.crm_bridge import outbox_process
from gateway.crm_bridge.outbox_process import OutboxProcess
from gateway.crm_bridge.store import BuiltinCrm
from tests.calls.conftest import REALM, LiveWorld


async def _until(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _count(live: LiveWorld, query: str) -> int:
    [row] = await live.rows(query)
    return int(row[0])


async def _written(live: LiveWorld, caller: str) -> tuple[int, int, int]:
    """(ended call-log rows, leads, call activities) of `caller`'s calls."""
    return (
        await _count(live, f"SELECT count(*) FROM calls WHERE party_raw = '{caller}' AND ended_at IS NOT NULL"
                           " AND crm IS NOT NULL"),
        await _count(live, "SELECT count(*) FROM leads WHERE interaction_key IN"
                           f" (SELECT interaction_key FROM calls WHERE party_raw = '{caller}')"),
        await _count(live, "SELECT count(*) FROM activities a JOIN calls c ON a.interaction_key = c.interaction_key"
                           f" WHERE a.kind = 'call' AND c.party_raw = '{caller}'"),
    )


async def _settled(live: LiveWorld, caller: str) -> tuple[int, int, int]:
    """`_written(caller)` once the outbox has nothing left to apply (or 10 s passed)."""
    for _ in range(100):
        unapplied = await _count(live, "SELECT count(*) FROM outbox_entries WHERE status != 'done'")
        if not unapplied and await _written(live, caller) == (1, 1, 1):
            break
        await asyncio.sleep(0.1)
    assert await _count(live, "SELECT count(*) FROM outbox_entries WHERE status != 'done'") == 0
    return await _written(live, caller)


def _gateway_journal(live: LiveWorld, link: Any, spool_dir: Path) -> tuple[CallJournal, ForwardedWork, CallSpool]:
    """The gateway's side: a journal with its spool, forwarding to `link`, routing `live`'s calls."""
    forward = ForwardedWork(link)
    spool = CallSpool(spool_dir)
    spool.open()
    journal = CallJournal(live.sessionmaker, BuiltinCrm(), spool=spool, forward=forward,
                          employee_for_extension=live.directory.employee_for_extension)
    live.journal = live.router.journal = journal
    return journal, forward, spool


async def test_c4_the_writer_process_writes_forwarded_calls_once_even_when_it_is_killed_mid_call(
    live: LiveWorld, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_process, "RESTART_DELAY", 0.1)
    process = OutboxProcess(db_url, log_level="WARNING", realm=REALM)
    journal, forward, spool = _gateway_journal(live, process, tmp_path / "spool")
    stop = asyncio.Event()
    running = asyncio.get_running_loop().create_task(process.run_forever(stop=stop))
    try:
        decision = await live.route(live.request("forwarded-1", "0611440001"))
        live.answer_and_hang_up("forwarded-1", live.bruno, decision)
        await _until(lambda: forward.calls == 0 and spool.calls == 0)
        assert await _settled(live, "0611440001") == (1, 1, 1)
        [row] = await live.rows("SELECT outcome, answered_by_id FROM calls WHERE call_id = 'forwarded-1'")
        assert (row.outcome, row.answered_by_id) == ("answered", live.bruno)

        # The second call is up when the child dies: its start may be written, its end is not sent yet.
        decision = await live.route(live.request("forwarded-2", "0611440002"))
        await _until(lambda: not forward.keys)  # the child has done what it was sent
        first = process._child
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        live.answer_and_hang_up("forwarded-2", live.bruno, decision)
        await _until(lambda: process.restarts == 1 and forward.calls == 0 and spool.calls == 0)
        assert await _settled(live, "0611440002") == (1, 1, 1)
        assert await _count(live, "SELECT count(*) FROM calls WHERE call_id LIKE 'forwarded-%'") == 2
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        spool.close()


class _Pipe:
    """The writer link without the process: what the gateway's journal sends, kept in order."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, line: bytes) -> None:
        self.lines.append(line)

    def connect(self, *, on_message: Callable[[dict[str, Any]], None], on_started: Callable[[], None]) -> None:
        self.on_message = on_message


class _NoSecondLookup(BuiltinCrm):
    async def find_party(self, session: Any, *, phone: str | None = None, email: str | None = None) -> Any:
        raise AssertionError("the writer looked the caller up again: the router's decision was not forwarded")


async def test_c2_the_writer_stores_the_routers_decision_without_looking_the_caller_up_again(live: LiveWorld) -> None:
    pipe = _Pipe()
    forward = ForwardedWork(pipe)
    gateway_side = CallJournal(live.sessionmaker, BuiltinCrm(), forward=forward,
                               employee_for_extension=live.directory.employee_for_extension)
    live.journal = live.router.journal = gateway_side
    done: list[str] = []
    writer = CallJournal(live.sessionmaker, _NoSecondLookup(), on_finished=done.append)

    decision = await live.route(live.request("decided-once", "0611440003"))
    live.answer_and_hang_up("decided-once", live.alice, decision)
    routed = json.loads(pipe.lines[0])
    assert routed["k"] == "routed" and routed["d"]["crm"]["plan"]["action"] == "create_lead"
    for line in pipe.lines:
        record = json.loads(line)
        writer.apply_record(record["c"], record["k"], record["d"])
    assert await writer.work.idle(10.0)
    assert writer.work.failures == 0 and done == ["decided-once"]
    [row] = await live.rows("SELECT crm, outcome, answered_by_id FROM calls WHERE call_id = 'decided-once'")
    crm = row.crm if isinstance(row.crm, dict) else json.loads(row.crm)
    assert crm["action"] == "create_lead" and "T4a" in crm["rule_ids"]
    assert (row.outcome, row.answered_by_id) == ("answered", live.alice)
    # What the writer says back reaches the gateway's side: the call is forgotten there.
    forward._message({"done": "decided-once"})
    assert forward.calls == 0


async def test_c4_each_record_goes_to_the_spool_and_the_writer_as_the_same_line(
    live: LiveWorld, tmp_path: Path
) -> None:
    """Made once for both: what the writer is sent is what a restart would replay from the spool, the
    router's CRM decision included."""
    pipe = _Pipe()
    _, _, spool = _gateway_journal(live, pipe, tmp_path / "spool")
    decision = await live.route(live.request("one-line", "0611440004"))
    live.answer_and_hang_up("one-line", live.alice, decision)
    spool.close()
    spooled = (tmp_path / "spool").glob("segment-*.jsonl")
    spool_lines = [line + b"\n" for path in spooled for line in path.read_bytes().splitlines()]
    sent = {json.loads(line)["k"]: line for line in pipe.lines}
    assert set(sent) == {"routed", "answered", "ended"}
    for kind in ("routed", "answered", "ended"):
        assert sent[kind] in spool_lines, kind
    [replayed] = CallSpool(tmp_path / "spool").open()
    assert [kind for kind, _ in replayed.records] == ["seen", "routed", "answered", "ended"]
    assert replayed.records[3][1] == json.loads(sent["ended"])["d"]
    # A replay after a crash records the call by the decision it rang by: the router's, in the spool.
    call = spooled_call(replayed.records)
    assert call is not None and call.crm is not None and call.crm.plan.action == "create_lead"


class _FullDisk:
    """A spool file on a full disk: every write fails."""

    def write(self, _data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


async def test_c4_a_spool_on_a_full_disk_loses_no_record_for_the_writer(
    live: LiveWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = _Pipe()
    _, _, spool = _gateway_journal(live, pipe, tmp_path / "spool")
    spool._file = _FullDisk()  # type: ignore[assignment]
    decision = await live.route(live.request("full-disk", "0611440005"))
    live.answer_and_hang_up("full-disk", live.alice, decision)
    assert [json.loads(line)["k"] for line in pipe.lines] == ["routed", "answered", "ended"]
    assert "call full-disk: not spooled" in caplog.text and "No space left" in caplog.text
