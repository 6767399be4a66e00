"""The garbage collector of a running gateway: start-up frozen, full collections only when needed.

Why: CPython's full (generation-2) collection walks every tracked object and stops the event loop
while it does. Under load the gateway holds ~150k objects from start-up (modules, SQLAlchemy,
FastAPI) plus every transaction lingering for Timers D/J/K/L/M (64*T1 after each call), so at
400 calls/s full collections took 100-360 ms every ~3 s: the SIP loop stood still, calls set up
in 200+ ms and an INVITE retransmitted after T1 crossed its 200. The call path makes no reference
cycles (refcounting frees it; checked with gc.DEBUG_SAVEALL, see bench/gc_probe.py), so:

- start-up objects are frozen (`gc.freeze()`): no collection walks them again;
- the young generations keep CPython's thresholds (they walk only recent objects: < 2 ms);
- automatic full collections are off; `collect_when_needed` looks every 30 s and runs one when
  the oldest generation has doubled since the last, at most every 2 minutes (start-up counts as
  one). What it collects are the few cycles of the periodic database workers; lingering
  transactions leave by refcount. So a full-collection pause can still come: once when load first
  fills the lingering set, and whenever cycles pile up, but not every few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: A generation-2 threshold no count of generation-1 collections reaches: automatic full collections off.
FULL_COLLECTIONS_OFF = 2**31 - 1


@dataclass(frozen=True)
class GcPolicy:
    """How often the oldest generation is looked at, and how much growth earns a full collection."""

    #: Counting generation 2 costs about 7 ms per 500k objects: often enough to catch growth, no more.
    check_every_s: float = 30.0
    #: A full collection once the oldest generation holds this many times what it held after the last one,
    growth: float = 2.0
    #: ...at least this many objects more (a nearly empty generation may double for nothing),
    min_growth_objects: int = 100_000
    #: ...and this long after the last one: a pause per 2 minutes at worst, whatever piles up.
    min_interval_s: float = 120.0


def full_collection_due(tracked_now: int, tracked_after_last: int, seconds_since_last: float,
                        policy: GcPolicy) -> bool:
    """True when the oldest generation grew enough since the last full collection to be worth one."""
    grown = tracked_now - tracked_after_last
    return (seconds_since_last >= policy.min_interval_s and grown >= policy.min_growth_objects
            and tracked_now >= policy.growth * tracked_after_last)


def oldest_generation_size() -> int:
    """Objects tracked in generation 2 (a list of references: about 1 ms per 200k objects)."""
    return len(gc.get_objects(generation=2))


def freeze_startup() -> int:
    """Collect once, freeze what is left, turn automatic full collections off; returns the frozen count."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTIONS_OFF)
    return gc.get_freeze_count()


async def collect_when_needed(stop: asyncio.Event, policy: GcPolicy = GcPolicy()) -> None:
    """Until `stop` is set: every `check_every_s`, a full collection if `full_collection_due`."""
    after_last, last_at = oldest_generation_size(), time.monotonic()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), policy.check_every_s)
        except TimeoutError:
            pass
        if stop.is_set():
            return
        now = oldest_generation_size()
        if full_collection_due(now, after_last, time.monotonic() - last_at, policy):
            started = time.monotonic()
            found = gc.collect()
            after_last, last_at = oldest_generation_size(), time.monotonic()
            log.info("full GC: %d objects in generation 2 before, %d after, %d unreachable, %.0f ms",
                     now, after_last, found, (last_at - started) * 1000)


# The loop keeps only weak references to its tasks: this one is kept alive here.
_running: set[asyncio.Task[None]] = set()


def tune_after_startup(stop: asyncio.Event, policy: GcPolicy = GcPolicy()) -> asyncio.Task[None]:
    """Freeze start-up, then watch the oldest generation until `stop` (the gateway's stop event)."""
    frozen = freeze_startup()
    log.info("GC: %d start-up objects frozen; full collections only when generation 2 grows", frozen)
    task = asyncio.get_running_loop().create_task(collect_when_needed(stop, policy))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
