"""`python -m bench`: SIPp ramp against SIPp direct, the gateway, sippy and Kamailio; parser speed.

Prints progress per step, then ONE table, and as its very last line:
`bench: direct_cps=N gateway_cps=N sippy_cps=N kamailio_cps=N parse_per_s=N gateway_half_cps=N
gateway_half_p50_ms=N gateway_half_p99_ms=N` (the last three: a steady run at half the gateway's max rate).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import signal
import sys
import time
from dataclasses import replace
from types import FrameType

from bench.procs import stop_all
from bench.ramp import TargetResult, run_half_rate, run_target
from bench.report import HALF_RATE_TARGETS, ORDER, ParseResult, machine_line, table, write_json
from bench.settings import BENCH_DIR, DEFAULT_RATES, BenchSettings, RampPlan
from bench.targets import make_targets

CRM_CONFIG = BENCH_DIR / "gateway-crm.toml"
CRM_CALL_MS = 50


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(ORDER), help="comma-separated, from %(default)s")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="calls/s per step")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="length of one step's calling")
    parser.add_argument("--call-ms", type=int, default=1000, help="call duration (SIPp -d)")
    parser.add_argument("--no-refine", action="store_true", help="no probe steps after the first failure")
    parser.add_argument("--sippy-workers", type=int, default=1, help="sippy UDP threads (default 1)")
    parser.add_argument("--kamailio-children", type=int, default=1, help="Kamailio UDP workers (default 1)")
    parser.add_argument("--half-seconds", type=float, default=20.0,
                        help="steady run at half the max rate for the gateway row (0: none)")
    parser.add_argument("--parse-seconds", type=float, default=2.0, help="parser micro-benchmark length")
    parser.add_argument("--crm", default="new,known",
                        help="CRM rows after the gateway row: calls from new and/or known callers ('' for none)")
    parser.add_argument("--flood-seconds", type=float, default=10.0,
                        help="the flood row: calls at half capacity while one source floods INVITEs at 10x (0: none)")
    parser.add_argument("--flood-capacity", type=int, default=0,
                        help="the capacity the flood row assumes (default: the gateway row's max, else 800 cps)")
    parser.add_argument("--mail-messages", type=int, default=500,
                        help="messages for the mail row (Dovecot inbox → CRM activities; 0: none)")
    return parser.parse_args(argv)


def measure_parser(seconds: float) -> ParseResult:
    """Run bench/parse_bench.py's parse_per_second(); 0 with a note when it is missing or breaks."""
    try:
        from bench.parse_bench import parse_per_second
    except ImportError as exc:
        return ParseResult(0.0, f"bench/parse_bench.py unavailable: {exc}")
    try:
        from gateway.sip.parser import use_speedups

        if not use_speedups(True):
            return ParseResult(float(parse_per_second(seconds)), "C fast path not built: pure Python only")
        fast = float(parse_per_second(seconds))
        use_speedups(False)
        try:
            python_only = parse_per_second(seconds / 2)
        finally:
            use_speedups(True)
        return ParseResult(fast, f"C fast path; the pure-Python parser alone: {python_only:,.0f}/s")
    except Exception as exc:  # a broken micro-benchmark must not cost the load results
        return ParseResult(0.0, f"parse_per_second failed: {type(exc).__name__}: {exc}")


def run_crm(mode: str, settings: BenchSettings, half_seconds: float) -> TargetResult:
    """A CRM row: the gateway on a freshly seeded database, calls from new or known callers."""
    from bench.crm import run_crm_row
    from bench.crm_seed import AGENTS, crm_setup, seeded_database

    name = f"crm-{mode}"
    # Each agent takes one call at a time (R3), so calls are short enough for the agents to keep up.
    crm_settings = replace(settings, plan=replace(settings.plan, call_ms=CRM_CALL_MS))
    print(f"bench: {name}: the gateway on a seeded database ({AGENTS} agents, evenly), calls from {mode} "
          f"callers, {CRM_CALL_MS} ms each", flush=True)
    try:
        setup = crm_setup()
        url = seeded_database(settings.state_dir / f"{name}.db", setup, (settings.host, settings.ports.uas))
        return run_crm_row(CRM_CONFIG, url, mode, name=name, setup=setup, settings=crm_settings,  # type: ignore[arg-type]
                           half_seconds=half_seconds, say=lambda line: print(line, flush=True))
    except Exception as exc:  # one row that cannot run must not cost the others
        return TargetResult(name, error=f"{type(exc).__name__}: {exc}")


def run_mail(messages: int) -> str:
    """The mail row: messages/s from a Dovecot inbox into CRM activities, and the memory used."""
    print(f"bench: mail: {messages} messages from a Dovecot inbox into the CRM", flush=True)
    try:
        from bench.mail_bench import run_mail_bench

        return run_mail_bench(messages=messages).row()
    except Exception as exc:
        return f"mail: not measured ({type(exc).__name__}: {exc})"


def run_flood(args: argparse.Namespace, settings: BenchSettings, results: dict[str, TargetResult]) -> str:
    """The flood row (bench/flood.py) at the measured (or given) capacity of the gateway."""
    gateway = results.get("gateway")
    capacity = args.flood_capacity or (gateway.max_cps if gateway and gateway.max_cps else 800)
    print(f"bench: flood: calls at {capacity // 2} cps while {capacity * 10} INVITEs/s come from one source",
          flush=True)
    try:
        from bench.flood import run_flood_row

        return run_flood_row(settings, capacity, args.flood_seconds, lambda line: print(line, flush=True)).row()
    except Exception as exc:  # one row that cannot run must not cost the others
        return f"flood: not measured ({type(exc).__name__}: {exc})"


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the whole bench; exit 0 when it measured (whatever the figures), 1 if interrupted."""
    args = _arguments(argv)
    plan = RampPlan(rates=tuple(int(r) for r in args.rates.split(",")), step_seconds=args.step_seconds,
                    call_ms=args.call_ms, refine=not args.no_refine)
    settings = replace(BenchSettings(), plan=plan, sippy_workers=args.sippy_workers,
                       kamailio_children=args.kamailio_children)
    targets = make_targets(settings, [t.strip() for t in args.targets.split(",") if t.strip()])
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    began = time.monotonic()
    results: dict[str, TargetResult] = {}
    parse = ParseResult(0.0, "not run")
    mail = "mail: not run"
    flood = "flood: not run"
    interrupted = False
    try:
        print(f"bench: parser micro-benchmark ({args.parse_seconds:g} s)", flush=True)
        parse = measure_parser(args.parse_seconds)
        for box in targets:
            print(f"bench: {box.name}: ramp {', '.join(map(str, plan.rates))} calls/s, "
                  f"{plan.step_seconds:g} s steps, {plan.call_ms} ms calls", flush=True)
            if shutil.which("sipp") is None:
                results[box.name] = TargetResult(box.name, error="sipp is not installed (apt sip-tester)")
                continue
            if box.name == "kamailio" and shutil.which("kamailio") is None:
                results[box.name] = TargetResult(box.name, error="kamailio is not installed (apt kamailio)")
                continue
            results[box.name] = TargetResult(box.name)
            run_target(box, settings, lambda line: print(line, flush=True), results[box.name])
            if box.name in HALF_RATE_TARGETS and args.half_seconds > 0:
                run_half_rate(box, settings, args.half_seconds, lambda line: print(line, flush=True),
                              results[box.name])
            if box.name == "gateway":
                for mode in [m.strip() for m in args.crm.split(",") if m.strip()]:
                    results[f"crm-{mode}"] = run_crm(mode, settings, args.half_seconds)
        if args.flood_seconds > 0 and shutil.which("sipp") is not None:
            flood = run_flood(args, settings, results)
        if args.mail_messages > 0:
            mail = run_mail(args.mail_messages)
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; stopping everything it started", flush=True)
    finally:
        stop_all()
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "seconds": round(time.monotonic() - began, 1), "interrupted": interrupted,
            "plan": {"rates": plan.rates, "step_seconds": plan.step_seconds, "call_ms": plan.call_ms,
                     "half_seconds": args.half_seconds},
            "sippy_workers": settings.sippy_workers, "kamailio_children": settings.kamailio_children}
    write_json(settings.results_file, results, parse, meta)
    print()
    print(table(results, parse))
    print(f"sippy ran {settings.sippy_workers} UDP worker thread(s), Kamailio {settings.kamailio_children} UDP "
          "worker(s): more of either can deliver a 180 after its 200, which SIPp's uac fails")
    print(f"({meta['seconds']:.0f} s; per-step results in {settings.results_file})")
    print(flood)
    print(mail)
    print(machine_line(results, parse), flush=True)
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
