"""SQL statements per call on the CRM path, counted in process: `python -m bench.crm_statements`.

The bench's seeded database (bench/crm_seed.py), the live router, the call journal and the outbox
worker as the gateway wires them, the SIP side replaced by the events the B2BUA would send (offer,
answer, end). Every statement the database driver runs is counted by phase: the router's lookup,
the journal's jobs, the outbox worker's applies. Prints statements per call for new and known callers,
and with --show the statements of one call.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.crm_seed import crm_setup, seeded_database
from gateway.b2bua.events import CallAnswered, CallEnded, CallStarted, LegOffered
from gateway.calls.directory import RoutingDirectory
from gateway.calls.journal import CallJournal
from gateway.calls.router import LiveRouter
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.routing.decision import RouteDecision
from gateway.routing.request import RouteRequest
from gateway.storage.session import make_engine, make_sessionmaker


class _Everyone:
    """Every extension has a registered phone (the benches' SIP side is not there)."""

    def __contains__(self, _extension: object) -> bool:
        return True


EVERYONE = _Everyone()

PHASES = ("lookup", "journal", "outbox")


class StatementCounter:
    """Counts the statements each engine runs, under the phase it is given."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.texts: dict[str, list[str]] = {phase: [] for phase in PHASES}
        self.recording = False

    def attach(self, engine: Any, phase: str) -> None:
        def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            self.counts[phase] += 1
            if self.recording:
                self.texts[phase].append(" ".join(statement.split())[:160])

        event.listen(engine.sync_engine, "before_cursor_execute", count)


def _request(call_id: str, caller: str, dialled: str) -> RouteRequest:
    return RouteRequest(
        call_id=call_id, request_user=dialled, to_user=dialled, caller_uri=f"sip:{caller}@trunk.bench",
        caller_user=caller, caller_display=None, asserted=None, privacy=None,
        source=("udp", "127.0.0.1", 5090), trusted=True, authenticated_user=None, at=0.0,
    )


async def _one_call(router: LiveRouter, journal: CallJournal, call_id: str, caller: str, dialled: str) -> None:
    request = _request(call_id, caller, dialled)
    journal.call_started(CallStarted(call_id, request, 0.0))
    decided: asyncio.Future[RouteDecision] = asyncio.get_running_loop().create_future()
    router.route(request, lambda decision, _now: decided.set_result(decision))
    decision = await asyncio.wait_for(decided, 5.0)
    target = decision.targets[0]
    for observer in (router, journal):
        observer.leg_offered(LegOffered(call_id, target, 0.0))
    journal.call_answered(CallAnswered(call_id, 0.0, 0.05, target))
    journal.call_ended(CallEnded(call_id, 0.05, "caller", 0.05))


async def measure(url: str, mode: str, calls: int, *, show: bool) -> tuple[Counter[str], dict[str, list[str]], float]:
    """Statements by phase for `calls` calls from new or known callers, and the seconds they took."""
    setup = crm_setup()
    counter = StatementCounter()
    engine, lookup_engine, worker_engine = make_engine(url), make_engine(url), make_engine(url)
    counter.attach(lookup_engine, "lookup")
    counter.attach(engine, "journal")
    counter.attach(worker_engine, "outbox")
    sessionmaker = make_sessionmaker(engine)
    directory = RoutingDirectory(sessionmaker, "bench")
    await directory.reload()
    worker = OutboxWorker(make_sessionmaker(worker_engine), BuiltinCrm())
    journal = CallJournal(sessionmaker, BuiltinCrm(), employee_for_extension=directory.employee_for_extension)
    loop = asyncio.get_running_loop()
    router = LiveRouter(directory, make_sessionmaker(lookup_engine), BuiltinCrm(), journal,
                        post=lambda callback: loop.call_soon(callback, loop.time()),
                        registered=lambda: EVERYONE, busy=frozenset, budget=5.0)
    callers = [f"+4915209{index:07d}" for index in range(calls)] if mode == "new" else [
        setup.known_callers[index % len(setup.known_callers)] for index in range(calls)]
    # One call first, unmeasured: the engines' first connections and the statement caches.
    await _one_call(router, journal, f"{mode}-warm@bench", "+4915208000000" if mode == "new" else callers[0],
                    setup.number)
    await journal.work.idle(10.0)
    await worker.run_once()
    counter.counts.clear()
    began = time.perf_counter()
    try:
        for index, caller in enumerate(callers):
            counter.recording = show and index == 0
            await _one_call(router, journal, f"{mode}-{index}@bench", caller, setup.number)
            await journal.work.idle(10.0)
            await worker.run_once()
        return counter.counts, counter.texts, time.perf_counter() - began
    finally:
        for each in (engine, lookup_engine, worker_engine):
            await each.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crm_statements", description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--show", action="store_true", help="print the statements of one call")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("new", "known"):
            url = seeded_database(Path(scratch) / f"{mode}.db", crm_setup(), ("127.0.0.1", 5090))
            counts, texts, seconds = asyncio.run(measure(url, mode, args.calls, show=args.show))
            per_call = {phase: counts[phase] / args.calls for phase in PHASES}
            print(f"{mode}: {sum(per_call.values()):.1f} statements per call ("
                  + ", ".join(f"{phase} {n:.1f}" for phase, n in per_call.items())
                  + f"); {args.calls / seconds:.0f} calls/s one at a time")
            if args.show:
                for phase in PHASES:
                    for text in texts[phase]:
                        print(f"  [{phase}] {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
