"""gateway.gc_tuning: start-up frozen, automatic full collections off, one only when generation 2 grew."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from gateway.gc_tuning import (
    FULL_COLLECTIONS_OFF,
    GcPolicy,
    collect_when_needed,
    freeze_startup,
    full_collection_due,
)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Whatever a test does to the collector is undone: other tests run in this process."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_full_collection_only_after_the_generation_doubled_by_enough_objects_and_time() -> None:
    policy = GcPolicy(growth=2.0, min_growth_objects=100_000, min_interval_s=120)
    assert not full_collection_due(250_000, 200_000, 600, policy)  # grew, but not doubled
    assert full_collection_due(400_000, 200_000, 600, policy)
    assert not full_collection_due(30_000, 10_000, 600, policy)  # tripled, but only 20k objects more
    assert full_collection_due(130_000, 10_000, 600, policy)
    assert not full_collection_due(400_000, 200_000, 119, policy)  # too soon after the last one


def test_freeze_startup_freezes_and_turns_automatic_full_collections_off(restored_gc: None) -> None:
    young, middle, _ = gc.get_threshold()
    frozen = freeze_startup()
    assert frozen > 0 and gc.get_freeze_count() == frozen
    assert gc.get_threshold() == (young, middle, FULL_COLLECTIONS_OFF)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_collect_when_needed_collects_grown_cycles_and_stops_with_the_gateway(restored_gc: None) -> None:
    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            collect_when_needed(stop, GcPolicy(check_every_s=0.05, growth=1.0, min_growth_objects=1000,
                                               min_interval_s=0)))
        await asyncio.sleep(0.01)
        gc.disable()  # these cycles must reach generation 2 only through the task's own collection
        try:
            garbage = [_Cycle() for _ in range(5000)]
            gc.collect(1)  # promote them into the oldest generation, as lingering load would
            del garbage
            await asyncio.sleep(0.2)
            left = sum(1 for o in gc.get_objects(generation=2) if type(o) is _Cycle)
        finally:
            gc.enable()
        stop.set()
        await asyncio.wait_for(task, 1)
        return left

    assert asyncio.run(scenario()) == 0
