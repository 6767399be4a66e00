"""The bench's one results table, its JSON file and its machine-readable last line."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.ramp import TargetResult

ORDER = ("direct", "gateway", "sippy", "kamailio")
#: Rows that also get a steady run at half their max rate (setup latency with headroom).
HALF_RATE_TARGETS = ("gateway",)
NOTE_WIDTH = 110  # the table's note column; the full reasons are in last.json


@dataclass(frozen=True)
class ParseResult:
    """Parser micro-benchmark: messages/s on a ~1 KB INVITE, and why it is 0 if it is."""

    per_second: float
    note: str = ""


def ratio(results: dict[str, TargetResult], top: str, bottom: str) -> float | None:
    """cps(top) / cps(bottom), or None when either is missing or the bottom carried nothing."""
    if top not in results or bottom not in results or results[bottom].max_cps == 0:
        return None
    return results[top].max_cps / results[bottom].max_cps


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _note(result: TargetResult) -> str:
    if result.error:
        return "not run: " + " | ".join(line.strip() for line in result.error.splitlines() if line.strip())
    failed = [s for s in result.steps if not s.passed]
    if not failed:
        return "every step passed: the ramp's top rate is a floor, not the box's limit"
    first = min(failed, key=lambda s: s.rate)
    note = f"{first.rate} cps failed: {first.reason}"
    return note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 3] + "..."


def table(results: dict[str, TargetResult], parse: ParseResult) -> str:
    """The results as one plain-text table plus the ratios the issue asks for."""
    head = ("target", "max cps", "p50 ms", "p99 ms", "mean ms", "CPU %", "RSS MB", "PSS MB", "half cps",
            "p50@half", "p99@half", "note")
    rows = [head]
    for name in [n for n in ORDER if n in results] + [n for n in results if n not in ORDER]:
        result, best = results[name], results[name].best
        cps = f"{'>=' if result.ceiling_reached else ''}{result.max_cps}"
        setup = best.setup if best else None
        rows.append((
            name, cps, _cell(setup and setup.p50, ".0f"), _cell(setup and setup.p99, ".0f"),
            _cell(setup and setup.mean, ".2f"), _cell(best and best.cpu_percent, ".0f"),
            _cell(best and best.rss_mb, ".0f"), _cell(best and best.pss_mb, ".0f"), *_half_cells(result),
            _note(result),
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in rows]
    lines.insert(1, "-" * (sum(widths) + 2 * len(widths) + 4))
    for bottom in ("sippy", "kamailio"):
        value = ratio(results, "gateway", bottom)
        lines.append(f"gateway/{bottom} = {_cell(value, '.2f')}")
    lines.extend(_gc_lines(results))
    lines.append("half = a steady run at half the max rate on fresh processes (p50/p99 setup, ms): the latency a "
                 "caller sees while the box has headroom.")
    lines.append("setup = INVITE to 200 at the uac, at the best step; SIPp's clock ticks in ~4 ms, so 0 reads "
                 "'< 4 ms': compare means. CPU % of one core; RSS summed over the box's processes, PSS splits "
                 "shared pages among them.")
    loads = [s.load_1m for r in results.values() for s in r.steps if s.load_1m is not None]
    if loads and max(loads) > 1.0:
        lines.append(f"warning: load average reached {max(loads):.1f} on {os.cpu_count()} cores during the run: "
                     "other work shared the CPUs, so these rates are low and noisy")
    lines.append(f"parser: {parse.per_second:,.0f} INVITEs/s (1 KB INVITE)" + (f"  [{parse.note}]"
                                                                              if parse.note else ""))
    return "\n".join(lines)


def _half_cells(result: TargetResult) -> tuple[str, str, str]:
    half = result.half
    if half is None:
        return "-", "-", "-"
    setup = half.setup
    rate = f"{half.rate}" if half.passed else f"{half.rate} FAIL"
    return rate, _cell(setup and setup.p50, ".0f"), _cell(setup and setup.p99, ".0f")


def _gc_lines(results: dict[str, TargetResult]) -> list[str]:
    lines = []
    for name, result in results.items():
        gc_figures = result.half_gc
        if not gc_figures:
            continue
        young = [gc_figures.get(f"gen{g}", {}) for g in (0, 1)]
        full = [pause for _, pause in gc_figures.get("full_while_ready", [])]
        lines.append(f"{name} GC in the half-rate run: " + ", ".join(
            f"gen{g} {y.get('count', 0)}x max {y.get('max_ms', 0):g} ms" for g, y in enumerate(young))
            + f", full (gen2) {len(full)}x max {max(full, default=0):g} ms once ready for calls; "
            f"{gc_figures.get('frozen', 0)} start-up objects frozen")
    return lines


def half_rate_fields(results: dict[str, TargetResult], name: str = "gateway") -> str:
    """`NAME_half_cps=N NAME_half_p50_ms=N NAME_half_p99_ms=N` (0 when the run did not happen)."""
    half = results[name].half if name in results else None
    setup = half.setup if half else None
    return (f"{name}_half_cps={half.rate if half else 0} {name}_half_p50_ms={round(setup.p50) if setup else 0} "
            f"{name}_half_p99_ms={round(setup.p99) if setup else 0}")


def machine_line(results: dict[str, TargetResult], parse: ParseResult) -> str:
    """The last line of `make bench`, in the exact format the issue fixes."""
    def cps(name: str) -> int:
        return results[name].max_cps if name in results else 0

    return (f"bench: direct_cps={cps('direct')} gateway_cps={cps('gateway')} sippy_cps={cps('sippy')} "
            f"kamailio_cps={cps('kamailio')} parse_per_s={int(parse.per_second)} {half_rate_fields(results)}")


def write_json(path: Path, results: dict[str, TargetResult], parse: ParseResult, meta: dict) -> None:
    """Everything measured, step by step, for later comparison."""
    data = {
        "meta": meta,
        "targets": {name: {"max_cps": r.max_cps, "ceiling_reached": r.ceiling_reached, "error": r.error,
                           "steps": [asdict(s) for s in r.steps],
                           "half_rate": asdict(r.half) if r.half else None, "half_rate_gc": r.half_gc}
                    for name, r in results.items()},
        "ratios": {"gateway/sippy": ratio(results, "gateway", "sippy"),
                   "gateway/kamailio": ratio(results, "gateway", "kamailio")},
        "parse_per_s": parse.per_second,
        "parse_note": parse.note,
        "last_line": machine_line(results, parse),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
