"""The call journal's spool (SPEC C2/C4 across a crash), in process on a real database.

The spool's files alone: what a reopened spool gives back, which files go once their calls are written,
a line cut short by a crash, a second gateway refused. The journal over it: a "crash" (the journal and
its jobs dropped, the spool closed without the done marks) and a replay by a new journal write each call
once, ending the calls that were up as interrupted; replaying what was already written doubles nothing;
with the database down, writes beyond the memory cap wait in the spool only and all arrive once after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from gateway.b2bua.events import CallAnswered, CallEnded, LegOffered
from gateway.calls.journal import CallJournal
from gateway.calls.journal_records import INTERRUPTED_NOTE, NOT_ROUTED_NOTE
from gateway.calls.keyed_work import KeyedWork
from gateway.calls.spool import CallSpool, SpoolError, default_spool_dir
from gateway.crm_bridge.store import BuiltinCrm
from tests.calls.conftest import LiveWorld


def test_c4_a_reopened_spool_gives_back_the_calls_not_done_in_order_and_drops_written_files(tmp_path: Path) -> None:
    spool = CallSpool(tmp_path, segment_bytes=120)  # a new file every record or two
    assert spool.open() == []
    for call_id in ("a", "b", "c"):
        spool.append(call_id, "routed", {"call_id": call_id, "pad": "x" * 40})
    spool.append("a", "ended", {"outcome": "answered"})
    spool.done("a")
    spool.done("c")
    spool.close()
    # A crash in the middle of a write leaves half a line; it is skipped, the rest is read.
    newest = sorted(tmp_path.glob("segment-*.jsonl"))[-1]
    with newest.open("ab") as handle:
        handle.write(b'{"c":"b","k":"answ')
    again = CallSpool(tmp_path, segment_bytes=120)
    left = again.open()
    assert [(call.call_id, [kind for kind, _ in call.records]) for call in left] == [("b", ["routed"])]
    assert again.calls == 1 and again.last_written is not None
    again.done("b")
    # Every file whose calls are all written is gone; only the new active one stays.
    assert [p.name for p in tmp_path.glob("segment-*.jsonl")] == [f"segment-{again._active:08d}.jsonl"]
    again.close()
    assert CallSpool(tmp_path).open() == []


def test_c4_two_gateways_cannot_share_a_spool(tmp_path: Path) -> None:
    first = CallSpool(tmp_path)
    first.open()
    with pytest.raises(SpoolError, match="another gateway uses it"):
        CallSpool(tmp_path).open()
    first.close()
    CallSpool(tmp_path).open()


def test_the_spool_sits_beside_a_sqlite_file_else_under_var() -> None:
    # One spool per database: a replay writes into the database its spool belongs to.
    assert default_spool_dir("sqlite+aiosqlite:////srv/gw/gateway.db") == Path("/srv/gw/gateway.db-spool")
    assert default_spool_dir("sqlite+aiosqlite:///./a.db") != default_spool_dir("sqlite+aiosqlite:///./b.db")
    assert default_spool_dir("postgresql+asyncpg://gw:pw@db.example:5432/gw") == Path("var/call-spool-db.example-gw")


def _journal(live: LiveWorld, spool: CallSpool, sessionmaker: Any = None, memory_calls: int = 1000) -> CallJournal:
    """A journal as `gateway run` builds one, over the world's database."""
    journal = CallJournal(sessionmaker or live.sessionmaker, BuiltinCrm(), spool=spool, memory_calls=memory_calls,
                          employee_for_extension=live.directory.employee_for_extension,
                          work=KeyedWork(first_delay=0.05, max_delay=0.2))
    live.journal = live.router.journal = journal
    return journal


async def _answered(live: LiveWorld, call_id: str, caller: str) -> None:
    decision = await live.route(live.request(call_id, caller))
    target = next(t for t in decision.targets if t.employee_id == live.bruno)
    live.journal.leg_offered(LegOffered(call_id, target, 0.0))
    live.journal.call_answered(CallAnswered(call_id, 1.0, 1.0, target))


async def _crash(journal: CallJournal) -> None:
    """What a kill -9 leaves: no job runs any more, the spool file as written so far."""
    tasks = list(journal.work._tasks)
    journal.work.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert journal.spool is not None
    journal.spool.close()


async def _counts(live: LiveWorld) -> dict[str, int]:
    counts = {}
    for table in ("calls", "decisions", "leads"):
        [row] = await live.rows(f"SELECT count(*) AS n FROM {table}")
        counts[table] = row.n
    [row] = await live.rows("SELECT count(*) AS n FROM activities WHERE kind = 'call'")
    counts["activities"] = row.n
    return counts


async def _settle(live: LiveWorld, journal: CallJournal) -> None:
    # The outbox worker runs meanwhile: a caller's second call waits for the lead of their first.
    for _ in range(400):
        await journal.work.idle(0.05)
        await asyncio.sleep(0)
        await live.worker.run_once()
        if not len(journal) and not journal.work.keys:
            for _ in range(3):
                await live.worker.run_once()
            return
    raise AssertionError("the journal did not settle")


async def test_c4_after_a_crash_the_replay_writes_each_call_once_and_ends_the_live_ones_as_interrupted(
    live: LiveWorld, tmp_path: Path,
) -> None:
    spool = CallSpool(tmp_path / "spool")
    spool.open()
    journal = _journal(live, spool)
    await _answered(live, "over", "0611330001")
    journal.call_ended(CallEnded("over", 3.0, "caller", 4.0))
    await _answered(live, "up", "0611330002")  # still talking at the crash
    request = live.request("looking-up", "0611330003")
    journal.lookup_started(_seen(live, request))  # the gateway dies during this call's CRM lookup
    await _settle(live, journal)  # "over" is written whole, "up" without its end, "looking-up" not at all
    await _crash(journal)
    _without_done_marks(tmp_path / "spool", tmp_path / "snapshot")

    spool = CallSpool(tmp_path / "spool")
    left = spool.open()
    assert [call.call_id for call in left] == ["up", "looking-up"]
    journal = _journal(live, spool)
    assert journal.replay(left) == 2
    await _settle(live, journal)
    assert await _counts(live) == {"calls": 3, "decisions": 3, "leads": 3, "activities": 3}
    rows = {r.call_id: r for r in await live.rows("SELECT call_id, outcome, status, answered_by_id, routing "
                                                    "FROM calls")}
    assert (rows["up"].outcome, rows["up"].status, rows["up"].answered_by_id) == ("answered", None, live.bruno)
    assert INTERRUPTED_NOTE in str(rows["up"].routing)
    assert (rows["looking-up"].outcome, rows["looking-up"].status) == ("failed", None)
    assert NOT_ROUTED_NOTE in str(rows["looking-up"].routing)
    [up] = await live.rows("SELECT completed_at FROM activities WHERE interaction_key = 'call:up'")
    assert up.completed_at is not None  # answered: its activity is completed, not left to call back
    assert spool.calls == 0
    await _crash(journal)

    # The spool as it was before anything reached the database, replayed over a database that has it all:
    # the replay races nothing it could double (SPEC C2).
    spool = CallSpool(tmp_path / "snapshot")
    left = spool.open()
    assert [call.call_id for call in left] == ["over", "up", "looking-up"]
    journal = _journal(live, spool)
    journal.replay(left)
    await _settle(live, journal)
    assert await _counts(live) == {"calls": 3, "decisions": 3, "leads": 3, "activities": 3}
    [ended] = await live.rows("SELECT count(*) AS n FROM outbox_entries WHERE kind = 'call_ended'")
    assert ended.n == 3
    await _crash(journal)


def _without_done_marks(source: Path, copy: Path) -> None:
    """`source` as a crash between the database's commits and the spool's done marks would leave it."""
    copy.mkdir()
    for segment in source.glob("segment-*.jsonl"):
        lines = segment.read_text().splitlines(keepends=True)
        (copy / segment.name).write_text("".join(line for line in lines if '"k":"done"' not in line))


def _seen(live: LiveWorld, request: Any) -> Any:
    from gateway.calls.router import UNROUTED
    from gateway.routing.numbers import caller_identity

    number = live.directory.number_for(request)
    assert number is not None
    identity = caller_identity(request, trusted=True, region=number.default_region)
    return live.router._routed_call(request, number, UNROUTED, identity, None)


class _Outage:
    """The database's sessions, refused while `down` (what a stopped PostgreSQL does to the journal)."""

    def __init__(self, sessionmaker: Callable[[], Any]) -> None:
        self.sessionmaker = sessionmaker
        self.down = True

    def __call__(self) -> Any:
        if self.down:
            raise OperationalError("SELECT 1", None, ConnectionRefusedError("database down"))
        return self.sessionmaker()


async def test_c4_beyond_the_memory_cap_writes_wait_in_the_spool_only_and_all_arrive_once_in_order(
    live: LiveWorld, tmp_path: Path,
) -> None:
    spool = CallSpool(tmp_path / "spool", segment_bytes=2048)
    spool.open()
    outage = _Outage(live.sessionmaker)
    journal = _journal(live, spool, outage, memory_calls=3)
    callers = [f"06113400{n:02d}" for n in range(8)] + ["0611340000"]  # the first caller calls again last
    most_in_memory = 0
    for n, caller in enumerate(callers):
        await _answered(live, f"o{n}", caller)
        journal.call_ended(CallEnded(f"o{n}", 2.0, "caller", 3.0))
        most_in_memory = max(most_in_memory, journal.work.keys)
    assert most_in_memory <= 3 and journal.spilled == len(callers) - 3
    await asyncio.sleep(0.3)  # retrying, still down
    assert journal.spilled == len(callers) - 3 and journal.work.keys == 3
    outage.down = False
    await _settle(live, journal)
    assert journal.spilled == 0 and spool.calls == 0
    assert await _counts(live) == {"calls": 9, "decisions": 9, "leads": 8, "activities": 9}
    # The caller's first call created their lead, the last one (read back from the spool) attached to it.
    [lead] = await live.rows("SELECT l.interaction_key FROM leads l JOIN item_phones p ON p.item_type = 'lead' "
                             "AND p.item_id = l.id WHERE p.normalized = '+33611340000'")
    assert lead.interaction_key == "call:o0"
    await _crash(journal)


def test_c4_a_read_back_gives_the_wanted_calls_whole_and_skips_the_others_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.calls import spool as spool_module

    spool = CallSpool(tmp_path)
    spool.open()
    odd_id = 'é "quoted" \\ id'  # not ASCII, and escaped in the line: parsed whole, still matched
    for n in range(200):
        spool.append(f"call-{n}", "routed", {"n": n, "pad": "x" * 500})
    spool.append(odd_id, "routed", {"n": -1})
    spool.append("call-7", "ended", {"outcome": "answered"})
    parsed: list[bytes] = []
    real_loads = spool_module.orjson.loads
    monkeypatch.setattr(spool_module.orjson, "loads", lambda raw: parsed.append(raw) or real_loads(raw))
    found = spool.records(["call-7", odd_id, "call-199"])
    assert [(c.call_id, [kind for kind, _ in c.records]) for c in found] == [
        ("call-7", ["routed", "ended"]), ("call-199", ["routed"]), (odd_id, ["routed"])]
    assert found[0].records[0][1] == {"n": 7, "pad": "x" * 500}
    assert len(parsed) == 4  # the wanted calls' lines only, not the other 199
    spool.close()
