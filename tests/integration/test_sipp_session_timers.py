"""Real SIPp through a real gateway process started with `[sip] max_call_seconds = 2`: the RFC 4028
offer and answer cross the gateway on the wire, and a caller that answers and then goes silent is
ended with a BYE on both legs.

The session-timer expiry itself is not run here: RFC 4028 §4 puts Min-SE at 90 s or more, so its
BYE would come a minute after the answer; the in-memory tests (tests/b2bua/test_session_timers.py)
prove it with a hand-moved clock. `max_call_seconds` ends the call instead, through the same BYE path.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    HOST,
    GatewayProcess,
    free_media_port,
    free_port,
    start_gateway,
    stop_gateway,
    wait_exit,
)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
MAX_CALL_SECONDS = 2


@pytest.fixture(scope="module")
def short_calls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway of its own whose calls last at most MAX_CALL_SECONDS."""
    running = start_gateway(tmp_path_factory.mktemp("short-calls"), extra_sip=f"max_call_seconds = {MAX_CALL_SECONDS}")
    try:
        yield running
    finally:
        stop_gateway(running)


def _sipp(directory: Path, scenario: str, port: int, *args: str) -> list[str]:
    return [
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", HOST, "-p", str(port), "-mp", str(free_media_port()),
        "-cp", str(free_port()), "-nostdin", "-m", "1", "-timeout", "20s", "-timeout_error",
        "-trace_err", "-error_file", str(directory / f"{scenario}.err"), *args,
    ]


def _metric(gateway: GatewayProcess, name: str) -> float | None:
    with urllib.request.urlopen(f"http://{HOST}:{gateway.admin_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _wait_udp_bound(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Poll the kernel's UDP socket table until something listens on `port` (SIPp bound), or fail
    when SIPp exited or the deadline passed; read only, so it can never steal the port from SIPp."""
    suffix = f":{port:04X}"
    while time.monotonic() < deadline:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with open(table) as sockets:
                next(sockets)  # the column titles
                if any(line.split()[1].endswith(suffix) for line in sockets):
                    return
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"SIPp never bound UDP port {port}")


def test_max_call_seconds_byes_a_silent_caller_on_both_legs_with_session_timers_negotiated(
    short_calls_gateway: GatewayProcess, tmp_path: Path
) -> None:
    """The BYEs come from max_call_seconds (the metric says "max-duration"), not from the session
    timer, whose expiry (a minute at least) the in-memory tests prove; SIPp proves the negotiation."""
    gateway = short_calls_gateway
    callee = subprocess.Popen(
        _sipp(tmp_path, "uas_session_timer.xml", gateway.trunk_port),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    try:
        _wait_udp_bound(gateway.trunk_port, callee, time.monotonic() + 10)
        caller = subprocess.run(
            _sipp(tmp_path, "uac_session_timer_silent.xml", free_port(), "-s", "2000", f"{HOST}:{gateway.sip_port}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, timeout=40,
        )
        errors = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*.err"))
        # Both scenarios check the Session-Expires / Supported / Require headers they receive.
        assert caller.returncode == 0, errors + gateway.log()[-3000:]
        assert wait_exit(callee) == 0, errors
    finally:
        if callee.poll() is None:
            callee.kill()
            callee.wait()
    assert _metric(gateway, 'gateway_calls_ended_total{reason="max-duration"}') == 1
    assert _metric(gateway, "gateway_calls_active") == 0
