"""`python -m bench.gc_probe OUT.json run --config FILE`: the gateway CLI with its GC pauses recorded.

A `gc.callbacks` hook times every collection per generation; the figures are written to OUT.json
when the gateway exits cleanly (SIGTERM), so the bench can say how long the loop stood still.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GcPauses:
    """Every collection's duration (ms) per generation."""

    pauses_ms: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    #: (Unix time, ms) of every full collection: when the loop stood still longest.
    full: list[tuple[float, float]] = field(default_factory=list)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started) * 1000
        self.pauses_ms[info["generation"]].append(pause_ms)
        if info["generation"] == 2:
            self.full.append((round(time.time() - pause_ms / 1000, 2), round(pause_ms, 1)))

    def summary(self) -> dict[str, object]:
        """Count, max and total pause per generation, plus the frozen and (at exit) tracked objects."""
        out: dict[str, object] = {"frozen": gc.get_freeze_count(), "tracked_at_exit": len(gc.get_objects())}
        for generation, pauses in self.pauses_ms.items():
            out[f"gen{generation}"] = {"count": len(pauses), "max_ms": round(max(pauses, default=0.0), 2),
                                      "total_ms": round(sum(pauses), 1)}
        out["full_collections"] = self.full
        return out


def cyclic_garbage_by_type(top: int = 30) -> dict[str, int]:
    """Under DEBUG_SAVEALL: what the collector found only in reference cycles, by type, commonest first."""
    gc.collect()
    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    return dict(counts.most_common(top))


def main(argv: list[str]) -> int:
    out, gateway_argv = Path(argv[0]), argv[1:]
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    # BENCH_GC_SAVEALL=1 keeps every cycle the collector frees, to find cycles made per call.
    saveall = os.environ.get("BENCH_GC_SAVEALL") == "1"
    if saveall:
        gc.set_debug(gc.DEBUG_SAVEALL)
        # SIGUSR1 while calls run: what the load made into cycles (at exit, everything is a cycle).
        signal.signal(signal.SIGUSR1, lambda *_: out.with_suffix(".cycles.json").write_text(
            json.dumps(cyclic_garbage_by_type(), indent=1) + "\n"))
    from gateway.cli import main as gateway_main

    # BENCH_PROFILE=FILE: a cProfile of the whole run (for finding where a call's CPU goes).
    profile_to = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_to else None
    try:
        if profiler is not None:
            profiler.enable()
        return gateway_main(gateway_argv)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)
        gc.callbacks.remove(pauses)
        summary = pauses.summary()
        if saveall:
            summary["cyclic_garbage"] = cyclic_garbage_by_type()
        out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
