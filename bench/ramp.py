"""One target's ramp: rising call rates through a middle box until a step fails."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.procs import Child, tree_usage, udp_port_bound, wait_for
from bench.settings import BenchSettings
from bench.sipp import (
    SetupTimes,
    read_counters,
    read_setup_times_ms,
    summarise,
    uac_argv,
    uas_argv,
    unexpected_messages,
)
from bench.targets import MiddleBox, TargetUnavailable

SUCCESS, FAILED, CURRENT, RETRANS = "SuccessfulCall(C)", "FailedCall(C)", "CurrentCall", "Retransmissions(C)"
# The uas keeps each call 4 s after its BYE (timewait in uas.xml), and SIPp dumps counters each second.
UAS_DRAIN_S = 4.0 + 1.0 + 4.0
#: Extra steps after the ramp's first failure (each on fresh processes), and the lowest rate tried.
MAX_PROBES = 2
MIN_PROBE_RATE = 25


@dataclass
class StepResult:
    """What one bounded step at one call rate showed."""

    rate: int
    calls: int
    passed: bool
    reason: str
    uac_exit: int | None
    uac_successful: int
    uac_failed: int
    uas_successful: int
    uas_failed: int
    retransmissions: int
    wall_s: float
    setup: SetupTimes | None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    pss_mb: float | None = None
    #: 1-minute load average when the step ended: other work on the machine skews every figure.
    load_1m: float | None = None
    #: CRM rows: seconds after the step's calls ended until every call was in the call log and no CRM
    #: write was pending (None: not a CRM row, or they never caught up).
    crm_written_s: float | None = None


@dataclass
class TargetResult:
    """A target's whole ramp; `error` is set when the box could not even be started."""

    name: str
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    #: The steady run at half the max rate (call-setup latency where the box is not saturated).
    half: StepResult | None = None
    #: The box's GC pauses during that run (bench/gc_probe.py), when it reports them.
    half_gc: dict[str, Any] | None = None

    @property
    def best(self) -> StepResult | None:
        """The highest-rate step that passed."""
        passed = [s for s in self.steps if s.passed]
        return max(passed, key=lambda s: s.rate) if passed else None

    @property
    def max_cps(self) -> int:
        """Max sustained calls/s with no failed call (0 if no step passed)."""
        best = self.best
        return best.rate if best else 0

    @property
    def ceiling_reached(self) -> bool:
        """True when even the ramp's last rate passed: the box may carry more than we asked."""
        return bool(self.steps) and all(s.passed for s in self.steps)


class Uas:
    """The answering SIPp behind every middle box, with its per-second counters."""

    def __init__(self, settings: BenchSettings, workdir: Path, extra_argv: Sequence[str] = (),
                 scenario: Path | None = None) -> None:
        """`scenario` replaces bench/uas.xml (which then answers as -oocsf); `extra_argv` adds SIPp options."""
        self.settings = settings
        self.stat_file = workdir / "uas.csv"
        self.error_log = workdir / "uas_errors.log"
        # SIPp only (re)creates its error log at the first error: a stale one would blame this run.
        self.error_log.unlink(missing_ok=True)
        self.stat_file.unlink(missing_ok=True)
        port = settings.ports.uas
        if udp_port_bound(settings.host, port):
            raise TargetUnavailable(f"UDP port {port} for the uas is already in use")
        argv = uas_argv(settings, self.stat_file)
        if scenario is not None:
            argv[argv.index(str(settings.uas_scenario))] = str(scenario)
            argv += ["-oocsf", str(settings.uas_scenario)]
        self.child = Child("uas", [*argv, *extra_argv], workdir / "uas.out", cwd=workdir)
        if not wait_for(lambda: self.counters() is not None or not self.child.alive(), 10):
            raise TargetUnavailable("the uas SIPp wrote no statistics within 10 s")
        if not self.child.alive():
            raise TargetUnavailable(f"the uas SIPp exited: {self.child.log_tail(3)}")

    def counters(self) -> dict[str, int] | None:
        """Its newest cumulative counters."""
        return read_counters(self.stat_file)

    def wait_drained(self, before: dict[str, int], calls: int, timeout_s: float) -> dict[str, int]:
        """Counters once every call of the step has ended at the uas (or at `timeout_s`)."""
        latest = before

        def drained() -> bool:
            nonlocal latest
            latest = self.counters() or latest
            ended = sum(latest.get(k, 0) - before.get(k, 0) for k in (SUCCESS, FAILED))
            return ended >= calls and latest.get(CURRENT) == 0

        wait_for(drained, timeout_s, 0.25)
        return latest

    def stop(self) -> None:
        """Stop it by PID."""
        self.child.stop()


#: Builds the processes a run of steps needs (`Pair`, or a subclass such as bench/crm.py's).
PairFactory = Callable[[MiddleBox, BenchSettings], "Pair"]


def run_target(box: MiddleBox, settings: BenchSettings, say: Callable[[str], None] = print,
               result: TargetResult | None = None, pair: PairFactory | None = None) -> TargetResult:
    """Ramp `box` through the plan's rates up to its first failing step, then probe (fresh processes).

    Steps are appended to `result` as they finish, so an interrupted run still reports them.
    """
    result = result if result is not None else TargetResult(box.name)
    make_pair = pair or Pair
    shutil.rmtree(box.workdir, ignore_errors=True)
    box.workdir.mkdir(parents=True)
    try:
        with make_pair(box, settings) as running:
            for rate in settings.plan.rates:
                step = running.step(rate)
                result.steps.append(step)
                say(_describe(box.name, step))
                if not step.passed:
                    break
    except TargetUnavailable as exc:
        result.error = str(exc)
        say(f"  {box.name:<9} unavailable: {exc}")
        return result
    for _ in range(MAX_PROBES if settings.plan.refine else 0):
        rate = _probe_rate(result)
        if rate is None:
            break
        try:
            with make_pair(box, settings) as running:
                step = running.step(rate)
        except TargetUnavailable as exc:
            say(f"  {box.name:<9} probe at {rate} cps skipped: {exc}")
            break
        result.steps.append(step)
        say(_describe(box.name, step) + "  (probe, on fresh processes)")
    return result


def run_half_rate(box: MiddleBox, settings: BenchSettings, seconds: float, say: Callable[[str], None] = print,
                  result: TargetResult | None = None, pair: PairFactory | None = None) -> TargetResult:
    """One steady run at half of `result`'s max rate for `seconds`, on fresh processes.

    Setup latency at the max rate measures the queue of a saturated box; at half of it, what a
    caller sees on a box with headroom (the loop's own stalls: GC, blocking work).
    """
    result = result if result is not None else TargetResult(box.name)
    rate = result.max_cps // 2
    if rate < MIN_PROBE_RATE:
        return result
    steady = replace(settings, plan=replace(settings.plan, step_seconds=seconds))
    try:
        with (pair or Pair)(box, steady) as running:
            result.half = running.step(rate)
    except TargetUnavailable as exc:
        say(f"  {box.name:<9} half-rate run at {rate} cps skipped: {exc}")
        return result
    result.half_gc = read_gc_pauses(box)
    say(_describe(box.name, result.half) + f"  (steady {seconds:g} s at half the max rate)")
    return result


def read_gc_pauses(box: MiddleBox) -> dict[str, Any] | None:
    """The GC figures a stopped box wrote (bench/gc_probe.py), or None for boxes that write none.

    `full_while_ready` lists the full collections (Unix time, ms) after the box was ready for calls.
    """
    path = getattr(box, "gc_file", None)
    try:
        data = json.loads(path.read_text()) if isinstance(path, Path) else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    ready_at = getattr(box, "ready_at", 0.0)
    data["full_while_ready"] = [entry for entry in data.get("full_collections", []) if entry[0] >= ready_at]
    return data


def _probe_rate(result: TargetResult) -> int | None:
    """Next rate to try after the ramp failed: halfway to the failure, or half the rate if none passed."""
    failed = [s.rate for s in result.steps if not s.passed]
    if not failed:
        return None
    best, lowest_failure = result.max_cps, min(failed)
    if best == 0:
        half = lowest_failure // 2
        return half if half >= MIN_PROBE_RATE else None
    between = (best + lowest_failure) // 2
    between -= between % (50 if between >= 200 else 10)
    # Stop once the gap is within a quarter of what already passed: enough for a 2x comparison.
    if lowest_failure - best <= best / 4 or not best < between < lowest_failure:
        return None
    return between


class Pair:
    """A fresh uas and middle box for a run of steps, stopped by PID however the run ends.

    Subclasses change who starts first (`__enter__`) and the caller's command line (`uac_argv`)."""

    def __init__(self, box: MiddleBox, settings: BenchSettings) -> None:
        self.box, self.settings = box, settings
        self.uas: Uas | None = None

    def __enter__(self) -> Pair:
        try:
            self.uas = Uas(self.settings, self.box.workdir)
            self.box.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.box.stop()
        if self.uas is not None:
            self.uas.stop()
            self.uas = None

    def uac_argv(self, rate: int, calls: int, step_dir: Path) -> list[str]:
        """The caller's SIPp command line for one step (its stat file in `step_dir`)."""
        return uac_argv(self.settings, self.box.port, rate, calls, step_dir / "uac.csv")

    def step(self, rate: int) -> StepResult:
        """One bounded step at `rate` calls/s, then let its calls drain."""
        assert self.uas is not None
        s, box = self.settings, self.box
        calls = s.plan.calls_at(rate)
        step_dir = box.workdir / f"step-{rate}"
        shutil.rmtree(step_dir, ignore_errors=True)
        step_dir.mkdir()
        before = self.uas.counters() or {}
        sampler = _UsageSampler(box.pid)
        started = time.monotonic()
        uac = Child("uac", self.uac_argv(rate, calls, step_dir), step_dir / "uac.out", cwd=step_dir)
        hard_stop = started + s.plan.uac_timeout_s() + 10
        while uac.wait(0.25) is None:
            sampler.sample()
            if time.monotonic() > hard_stop:
                uac.stop()
        wall = time.monotonic() - started
        sampler.sample()
        uac.stop()
        uac_counts = read_counters(step_dir / "uac.csv") or {}
        after = self.uas.wait_drained(before, calls, UAS_DRAIN_S)
        step = _judge(rate, calls, uac.popen.returncode, uac_counts, before, after, s.plan.max_retrans_ratio,
                      box.died())
        if not step.passed:
            for side, log in (("uac", step_dir / "uac_errors.log"), ("uas", self.uas.error_log)):
                aborted = unexpected_messages(log)
                step.reason += f"; {side} aborted calls on {aborted}" if aborted else ""
            if "180 Ringing while pausing" in step.reason and step.uas_successful == calls:
                step.reason = "a 180 came after its 200 (reordered by the box; the uas completed every call): " \
                    + step.reason
        step.wall_s = wall
        step.setup = summarise(read_setup_times_ms(step_dir))
        step.cpu_percent, step.rss_mb, step.pss_mb = sampler.result(wall)
        step.load_1m = os.getloadavg()[0]
        return step


def _judge(rate: int, calls: int, uac_exit: int | None, uac: dict[str, int], before: dict[str, int],
           after: dict[str, int], max_retrans_ratio: float, box_died: str | None) -> StepResult:
    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    uas_ok, uas_failed = delta(SUCCESS), delta(FAILED)
    uac_ok, uac_failed = uac.get(SUCCESS, 0), uac.get(FAILED, 0)
    retrans = uac.get(RETRANS, 0) + delta(RETRANS)
    reasons = []
    if box_died:
        reasons.append(box_died)
    if not uac:
        reasons.append("uac wrote no statistics")
    elif uac_ok != calls or uac_failed or uac_exit != 0:
        causes = ", ".join(f"{k.removeprefix('Failed').removesuffix('(C)')} {v}" for k, v in uac.items()
                           if k.startswith("Failed") and k != FAILED and v)
        reasons.append(f"uac {uac_ok}/{calls} ok, {uac_failed} failed" + (f" ({causes})" if causes else "")
                       + (f", exit {uac_exit}" if uac_exit != 0 else ""))
    if uas_ok != calls or uas_failed:
        unfinished = calls - uas_ok - uas_failed
        reasons.append(f"uas {uas_ok}/{calls} ok, {uas_failed} failed"
                       + (f", {unfinished} unfinished" if unfinished > 0 else ""))
    if retrans >= max_retrans_ratio * calls:
        reasons.append(f"{retrans} retransmissions (>= {max_retrans_ratio:.0%} of calls)")
    return StepResult(rate=rate, calls=calls, passed=not reasons, reason="; ".join(reasons),
                      uac_exit=uac_exit, uac_successful=uac_ok, uac_failed=uac_failed,
                      uas_successful=uas_ok, uas_failed=uas_failed, retransmissions=retrans, wall_s=0.0,
                      setup=None)


class _UsageSampler:
    """CPU share over a step and peak memory of the middle box's process tree."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        first = tree_usage(pid) if pid else None
        self.cpu_start = first.cpu_s if first else None
        self.cpu_end = self.cpu_start
        self.rss_kb = self.pss_kb = 0

    def sample(self) -> None:
        usage = tree_usage(self.pid) if self.pid else None
        if usage is None:
            return
        self.cpu_end = usage.cpu_s
        self.rss_kb, self.pss_kb = max(self.rss_kb, usage.rss_kb), max(self.pss_kb, usage.pss_kb)

    def result(self, wall_s: float) -> tuple[float | None, float | None, float | None]:
        if self.cpu_start is None or self.cpu_end is None or wall_s <= 0:
            return None, None, None
        cpu = (self.cpu_end - self.cpu_start) / wall_s * 100
        return cpu, self.rss_kb / 1024, self.pss_kb / 1024


def _describe(name: str, step: StepResult) -> str:
    verdict = "pass" if step.passed else f"FAIL: {step.reason}"
    setup = (f"  setup p50 {step.setup.p50:.0f} p99 {step.setup.p99:.0f} mean {step.setup.mean:.2f} ms"
             if step.setup else "")
    usage = (f"  cpu {step.cpu_percent:.0f}% rss {step.rss_mb:.0f} MB" if step.cpu_percent is not None
             else "")
    written = f"  CRM written +{step.crm_written_s:.1f} s" if step.crm_written_s is not None else ""
    return (f"  {name:<9} {step.rate:>5} cps {step.calls:>6} calls  {verdict}{setup}{usage}{written}  "
            f"load {step.load_1m:.1f}")
