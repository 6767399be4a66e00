"""The bench's own parts: result reading, verdicts, probing, the report line, Kamailio's config.

No load here (speed is `make bench`'s business); the one SIPp test places 20 short calls."""

from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bench.ramp import (
    StepResult,
    TargetResult,
    _judge,
    _probe_rate,
    read_gc_pauses,
    run_half_rate,
    run_target,
)
from bench.report import ParseResult, machine_line, ratio, table
from bench.settings import BenchSettings, Ports, RampPlan
from bench.sipp import SetupTimes, percentile, read_counters, summarise
from bench.targets import Gateway, MiddleBox

LAST_LINE = re.compile(r"^bench: direct_cps=\d+ gateway_cps=\d+ sippy_cps=\d+ kamailio_cps=\d+ parse_per_s=\d+ "
                       r"gateway_half_cps=\d+ gateway_half_p50_ms=\d+ gateway_half_p99_ms=\d+$")


def _step(rate: int, passed: bool) -> StepResult:
    return StepResult(rate=rate, calls=rate * 5, passed=passed, reason="" if passed else "x", uac_exit=0,
                      uac_successful=0, uac_failed=0, uas_successful=0, uas_failed=0, retransmissions=0,
                      wall_s=0.0, setup=None)


def _free_udp_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarise_reports_none_without_samples() -> None:
    assert summarise([]) is None
    summary = summarise([4.0, 0.0, 8.0, 4.0])
    assert summary is not None and (summary.p50, summary.p99, summary.mean) == (4.0, 8.0, 4.0)


def test_read_counters_uses_the_last_complete_row(tmp_path: Path) -> None:
    stat = tmp_path / "s.csv"
    stat.write_text("TotalCallCreated;CurrentCall;SuccessfulCall(C);FailedCall(C);Retransmissions(C)\n"
                    "10;3;7;0;1\n12;0;11;1;2\n12;0")
    counters = read_counters(stat)
    assert counters is not None
    assert (counters["SuccessfulCall(C)"], counters["FailedCall(C)"], counters["CurrentCall"]) == (11, 1, 0)
    assert read_counters(tmp_path / "missing.csv") is None


def test_step_fails_when_the_uas_lost_calls_even_if_the_uac_is_happy() -> None:
    uac = {"SuccessfulCall(C)": 100, "FailedCall(C)": 0, "Retransmissions(C)": 0}
    before = {"SuccessfulCall(C)": 50, "FailedCall(C)": 0, "Retransmissions(C)": 0}
    after = {"SuccessfulCall(C)": 140, "FailedCall(C)": 10, "Retransmissions(C)": 0}
    step = _judge(20, 100, 0, uac, before, after, 0.01, None)
    assert not step.passed and "uas 90/100 ok, 10 failed" in step.reason


def test_step_fails_at_one_percent_retransmissions() -> None:
    uac = {"SuccessfulCall(C)": 100, "FailedCall(C)": 0, "Retransmissions(C)": 1}
    before = {"SuccessfulCall(C)": 0, "FailedCall(C)": 0, "Retransmissions(C)": 0}
    clean = {"SuccessfulCall(C)": 100, "FailedCall(C)": 0, "Retransmissions(C)": 0}
    assert not _judge(20, 100, 0, uac, before, clean, 0.01, None).passed
    assert _judge(20, 100, 0, dict(uac, **{"Retransmissions(C)": 0}), before, clean, 0.01, None).passed


def test_probe_goes_halfway_then_halves_from_zero() -> None:
    assert _probe_rate(TargetResult("x", [_step(200, True), _step(400, False)])) == 300
    assert _probe_rate(TargetResult("x", [_step(100, False)])) == 50
    assert _probe_rate(TargetResult("x", [_step(400, True), _step(450, False)])) is None
    assert _probe_rate(TargetResult("x", [_step(100, True)])) is None


def test_last_line_format_and_ratio() -> None:
    results = {"gateway": TargetResult("gateway", [_step(400, True), _step(800, False)]),
               "sippy": TargetResult("sippy", [_step(100, True), _step(200, False)])}
    line = machine_line(results, ParseResult(123456.7))
    assert LAST_LINE.match(line)
    assert "gateway_cps=400" in line and "direct_cps=0" in line and "parse_per_s=123456" in line
    assert ratio(results, "gateway", "sippy") == 4.0
    assert ratio(results, "gateway", "kamailio") is None
    assert "gateway/sippy = 4.00" in table(results, ParseResult(0.0, "missing"))
    assert "gateway_half_cps=0 gateway_half_p50_ms=0 gateway_half_p99_ms=0" in line


def test_half_rate_run_is_in_the_table_and_the_last_line() -> None:
    half = replace(_step(200, True), setup=SetupTimes(p50=4.0, p99=16.4, mean=2.0, count=4000))
    results = {"gateway": TargetResult("gateway", [_step(400, True), _step(800, False)], half=half,
                                       half_gc={"gen0": {"count": 9, "max_ms": 1.5}, "frozen": 1234,
                                                "full_while_ready": [[1.0, 12.5], [2.0, 30.0]]})}
    line = machine_line(results, ParseResult(1.0))
    assert LAST_LINE.match(line)
    assert line.endswith("gateway_half_cps=200 gateway_half_p50_ms=4 gateway_half_p99_ms=16")
    text = table(results, ParseResult(1.0))
    row = next(r for r in text.splitlines() if r.startswith("gateway "))
    assert row.split()[8:11] == ["200", "4", "16"]
    assert "gen0 9x max 1.5 ms" in text and "full (gen2) 2x max 30 ms once ready for calls; 1234 start-up" in text
    failed = replace(half, passed=False)
    assert "200 FAIL" in table({"gateway": replace(results["gateway"], half=failed)}, ParseResult(1.0))


def test_no_half_rate_run_below_the_lowest_probe_rate(tmp_path: Path) -> None:
    settings = replace(BenchSettings(), state_dir=tmp_path)
    result = run_half_rate(MiddleBox(settings), settings, 1.0, say=lambda _line: None,
                           result=TargetResult("direct", [_step(40, True)]))
    assert result.half is None  # half of 40 is under MIN_PROBE_RATE: nothing was started


def test_gc_figures_are_read_from_the_probe_file(tmp_path: Path) -> None:
    settings = replace(BenchSettings(), state_dir=tmp_path)
    box = Gateway(settings)
    assert read_gc_pauses(box) is None
    box.workdir.mkdir(parents=True)
    box.gc_file.write_text('{"gen2": {"count": 2, "max_ms": 7.5}, "full_collections": [[99.0, 40.0], [101.5, 7.5]]}')
    box.ready_at = 100.0
    figures = read_gc_pauses(box)
    assert figures is not None and figures["gen2"] == {"count": 2, "max_ms": 7.5}
    assert figures["full_while_ready"] == [[101.5, 7.5]]  # the one at 99.0 was start-up's
    assert read_gc_pauses(MiddleBox(settings)) is None


def test_kamailio_config_is_accepted_by_kamailio() -> None:
    cfg = BenchSettings().kamailio_cfg
    done = subprocess.run(["kamailio", "-f", str(cfg), "-A", "LISTEN_PORT=15070",
                           "-A", 'UAS_URI="sip:127.0.0.1:15090"', "-c"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_direct_step_with_real_sipp_counts_every_call_at_both_ends(tmp_path: Path) -> None:
    uas, uac, uas_cp, uac_cp = _free_udp_ports(4)
    settings = replace(BenchSettings(), state_dir=tmp_path,
                       ports=Ports(uas=uas, uac=uac, uas_control=uas_cp, uac_control=uac_cp),
                       plan=RampPlan(rates=(20,), step_seconds=1.0, call_ms=100, refine=False))
    result = run_target(MiddleBox(settings), settings, say=lambda _line: None)
    assert result.error is None
    (step,) = result.steps
    assert step.passed, step.reason
    assert (step.calls, step.uac_successful, step.uas_successful) == (20, 20, 20)
    assert step.setup is not None and step.setup.count == 20
    assert result.max_cps == 20 and result.ceiling_reached
