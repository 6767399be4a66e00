"""CPU per call on the CRM path, in process, under concurrency: `python -m bench.crm_cpu`.

The bench's seeded database (bench/crm_seed.py); the live router, the call journal with its spool,
the card hub and the outbox worker wired as `gateway run` wires them; the SIP side replaced by the
events the B2BUA would send (start, offer, answer, end). Calls are started at `--rate` per second
(up to `--inflight` at once) until `--calls` were placed; the run ends when every write is applied.
Prints the process CPU per call (ms) and what it means in calls/s per core, for new and known
callers. With --profile, the hottest functions (cProfile) of the new-caller run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench.crm_seed import crm_setup, seeded_database
from bench.crm_statements import EVERYONE, _request
from gateway.b2bua.events import CallAnswered, CallEnded, CallStarted, LegOffered
from gateway.calls.card_events import CardHub
from gateway.calls.card_facts import DatabaseCardReader
from gateway.calls.directory import RoutingDirectory
from gateway.calls.group_commit import GroupCommit
from gateway.calls.journal import CallJournal
from gateway.calls.router import LiveRouter
from gateway.calls.spool import CallSpool
from gateway.calls.writer_process import GROUP_GATHER, GROUP_MAX_JOBS, GROUP_QUIET
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.crm_bridge.store.lookup import InlinePartyLookup
from gateway.routing.decision import RouteDecision
from gateway.storage.inline_reads import InlineReads
from gateway.storage.session import make_call_path_engine, make_engine, make_sessionmaker

CALL_S = 0.05


async def _one_call(router: LiveRouter, observers: list, call_id: str, caller: str, dialled: str) -> None:
    loop = asyncio.get_running_loop()
    request = _request(call_id, caller, dialled)
    for observer in observers:
        observer.call_started(CallStarted(call_id, request, loop.time()))
    decided: asyncio.Future[RouteDecision] = loop.create_future()
    router.route(request, lambda decision, _now: decided.set_result(decision))
    decision = await asyncio.wait_for(decided, 10.0)
    target = decision.targets[0]
    for observer in (router, *observers):
        observer.leg_offered(LegOffered(call_id, target, loop.time()))
    for observer in observers:
        observer.call_answered(CallAnswered(call_id, loop.time(), 0.01, target))
    await asyncio.sleep(CALL_S)
    for observer in observers:
        observer.call_ended(CallEnded(call_id, loop.time(), "caller", CALL_S))


async def measure(url: str, spool_dir: Path, mode: str, calls: int, rate: float, inflight: int,
                  profile: cProfile.Profile | None) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, seconds until every write was applied) for `calls` calls."""
    setup = crm_setup()
    engine = make_call_path_engine(url)
    lookup_engine = make_engine(url, inline_sqlite=True)
    sessionmaker, lookups = make_sessionmaker(engine), make_sessionmaker(lookup_engine)
    directory = RoutingDirectory(sessionmaker, "bench")
    await directory.reload()
    worker = OutboxWorker(sessionmaker, BuiltinCrm())
    spool = CallSpool(spool_dir)
    spool.open()
    journal = CallJournal(sessionmaker, BuiltinCrm(), wake_outbox=worker.wake,
                          employee_for_extension=directory.employee_for_extension,
                          number_facts=directory.number_facts, spool=spool,
                          group=GroupCommit(sessionmaker, gather=GROUP_GATHER, max_jobs=GROUP_MAX_JOBS, quiet=GROUP_QUIET))
    card = CardHub(DatabaseCardReader(lookups, BuiltinCrm()), routed_call=journal.routed_call,
                   employee_for_extension=directory.employee_for_extension, wake_outbox=worker.wake)
    loop = asyncio.get_running_loop()
    # As `gateway run` wires it: the caller looked up without a session, the writer's group commit.
    reads = InlineReads.for_url(url)
    party_lookup = InlinePartyLookup(reads) if reads is not None else None
    router = LiveRouter(directory, lookups, BuiltinCrm(), journal,
                        post=lambda callback: loop.call_soon(callback, loop.time()),
                        registered=lambda: EVERYONE, busy=frozenset, budget=0.3,
                        party_lookup=party_lookup.find_party if party_lookup is not None else None)
    observers = [journal, card]
    stop = asyncio.Event()
    worker_task = loop.create_task(worker.run_forever(stop=stop))
    salt = int(time.time()) % 1000
    callers = [f"+491521{salt:03d}{index:06d}" for index in range(calls + 1)] if mode == "new" else [
        setup.known_callers[index % len(setup.known_callers)] for index in range(calls + 1)]
    await _one_call(router, observers, f"{mode}-warm@bench", callers[-1], setup.number)
    await journal.work.idle(10.0)
    slots = asyncio.Semaphore(inflight)

    async def placed(index: int) -> None:
        async with slots:
            await _one_call(router, observers, f"{mode}-{index}-{salt}@bench", callers[index], setup.number)

    if profile is not None:
        profile.enable()
    cpu0, began, main0 = time.process_time(), time.perf_counter(), time.thread_time()
    tasks = []
    for index in range(calls):
        tasks.append(loop.create_task(placed(index)))
        await asyncio.sleep(max(0.0, began + (index + 1) / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    placed_s = time.perf_counter() - began
    await journal.work.idle(60.0)
    print(f"  the journal's writes done after {time.perf_counter() - began:.1f} s", flush=True)
    while (await worker.run_once()).applied:
        pass
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - began
    print(f"  the event loop's thread: {(time.thread_time() - main0) / calls * 1000:.2f} ms CPU per call")
    if profile is not None:
        profile.disable()
    stop.set()
    worker.wake()
    await worker_task
    spool.close()
    print(f"  over budget: {router.over_budget}")
    if party_lookup is not None:
        party_lookup.close()
    for each in (engine, lookup_engine):
        await each.dispose()
    return cpu, placed_s, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crm_cpu", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=300.0, help="calls started per second")
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--modes", default="new,known")
    parser.add_argument("--profile", type=int, default=0, help="print the N hottest functions (new callers)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        for mode in args.modes.split(","):
            url = seeded_database(Path(scratch) / f"{mode}.db", crm_setup(), ("127.0.0.1", 5090))
            profile = cProfile.Profile() if args.profile else None
            cpu, placed_s, wall = asyncio.run(measure(url, Path(scratch) / f"{mode}-spool", mode, args.calls,
                                                      args.rate, args.inflight, profile))
            print(f"{mode}: {cpu / args.calls * 1000:.2f} ms CPU per call ({args.calls / cpu:.0f} calls/s per "
                  f"core); placed in {placed_s:.1f} s, all written after {wall:.1f} s")
            if profile is not None:
                pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
