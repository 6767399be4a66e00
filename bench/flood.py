"""The flood row: one address sends INVITEs at 10x the gateway's capacity while SIPp, from the trunk,
places ordinary calls at half of it; the row is the share of those calls that completed (target ≥ 99 %).

The flood comes from 127.0.0.2, an untrusted address (the bench's trunk is 127.0.0.1): the gateway's
per-source rate limit (gateway.guard) blocks it after its burst and drops the rest unparsed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.procs import Child
from bench.ramp import Pair, StepResult
from bench.settings import BenchSettings
from bench.targets import Gateway, MiddleBox, TargetUnavailable

FLOOD_SOURCE = "127.0.0.2"
FLOOD_FACTOR = 10


@dataclass
class FloodResult:
    """The honest calls' step under flood, and what the flooder sent."""

    capacity: int
    flood_rate: int
    step: StepResult | None = None
    flood_sent: int = 0
    error: str | None = None

    @property
    def completed_percent(self) -> float:
        step = self.step
        return 100.0 * step.uac_successful / step.calls if step and step.calls else 0.0

    def row(self) -> str:
        if self.error or self.step is None:
            return f"flood: not measured ({self.error})"
        step = self.step
        return (f"flood: {self.completed_percent:.2f} % of {step.calls} calls completed at {step.rate} cps "
                f"(half of {self.capacity}) while {FLOOD_SOURCE} sent {self.flood_sent} INVITEs "
                f"({self.flood_rate}/s asked); gateway CPU {step.cpu_percent or 0:.0f}%"
                + ("" if step.passed else f"; {step.reason}"))


class FloodPair(Pair):
    """The gateway and its uas, plus the flooder for as long as the step lasts."""

    def __init__(self, box: MiddleBox, settings: BenchSettings, flood_rate: int) -> None:
        super().__init__(box, settings)
        self.flood_rate = flood_rate
        self.flooder: Child | None = None

    def __enter__(self) -> FloodPair:
        super().__enter__()
        s = self.settings
        seconds = s.plan.step_seconds + 2.0
        argv = [sys.executable, "-m", "bench.flooder", FLOOD_SOURCE, f"{s.host}:{self.box.port}",
                str(self.flood_rate), str(seconds)]
        self.flooder = Child("flooder", argv, self.box.workdir / "flooder.log", cwd=s.project_root)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.flooder is not None:
            self.flooder.wait(self.settings.plan.step_seconds + 10)
            self.flooder.stop()
        super().__exit__(*exc)

    def flood_sent(self) -> int:
        text = self.flooder.log.read_text(errors="replace") if self.flooder else ""
        words = text.split()
        return int(words[2]) if len(words) > 2 and words[:2] == ["flooder:", "sent"] else 0


def run_flood_row(settings: BenchSettings, capacity: int, seconds: float,
                  say: Callable[[str], None] = print) -> FloodResult:
    """Calls at capacity/2 for `seconds` under a flood at capacity x 10, on a fresh gateway."""
    result = FloodResult(capacity, capacity * FLOOD_FACTOR)
    box = Gateway(settings, name="gateway-flood")
    box.workdir.mkdir(parents=True, exist_ok=True)
    steady = replace(settings, plan=replace(settings.plan, step_seconds=seconds))
    try:
        with FloodPair(box, steady, result.flood_rate) as running:
            result.step = running.step(max(1, capacity // 2))
        result.flood_sent = running.flood_sent()
    except TargetUnavailable as exc:
        result.error = str(exc)
    say(result.row())
    return result
