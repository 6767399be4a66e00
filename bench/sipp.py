"""SIPp command lines for the bench's caller (uac) and answerer (uas), and reading their results."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.settings import BenchSettings

SOCKET_BUFFER = 1048576  # bytes; the default buffers drop datagrams in bursts at a few thousand calls/s

#: Counters read from a SIPp `-trace_stat` file (cumulative "(C)" columns).
COUNTERS = (
    "TotalCallCreated", "CurrentCall", "SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)",
    "FailedMaxUDPRetrans(C)", "FailedUnexpectedMessage(C)", "FailedCallRejected(C)",
    "FailedTimeoutOnRecv(C)", "FailedCannotSendMessage(C)", "OutOfCallMsgs(C)", "DeadCallMsgs(C)",
    "WatchdogMajor(C)", "WatchdogMinor(C)", "AutoAnswered(C)",
)


def uas_argv(settings: BenchSettings, stat_file: Path) -> list[str]:
    """The answering SIPp on the uas port; it dumps its counters every second into `stat_file`."""
    return [
        "sipp", "-sf", str(settings.uas_scenario), "-i", settings.host, "-p", str(settings.ports.uas),
        "-cp", str(settings.ports.uas_control), "-buff_size", str(SOCKET_BUFFER), "-nostdin",
        "-trace_stat", "-stf", str(stat_file), "-fd", "1",
        "-trace_err", "-error_file", str(stat_file.with_name("uas_errors.log")),
    ]


def uac_argv(settings: BenchSettings, target_port: int, rate: int, calls: int, stat_file: Path) -> list[str]:
    """SIPp's built-in uac placing `calls` calls at `rate` calls/s to `target_port`, then exiting.

    -trace_rtt with -rtt_freq 1 writes every call's setup time (INVITE to 200, the uac's rtd):
    SIPp only flushes that file every rtt_freq calls and drops the remainder at exit.
    """
    plan = settings.plan
    return [
        "sipp", "-sn", "uac", f"{settings.host}:{target_port}", "-i", settings.host,
        "-p", str(settings.ports.uac), "-cp", str(settings.ports.uac_control),
        "-buff_size", str(SOCKET_BUFFER), "-nostdin",
        "-r", str(rate), "-m", str(calls), "-d", str(plan.call_ms), "-timeout", f"{plan.uac_timeout_s()}s",
        "-trace_stat", "-stf", str(stat_file), "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
        "-trace_err", "-error_file", str(stat_file.with_name("uac_errors.log")),
    ]


def read_counters(stat_file: Path) -> dict[str, int] | None:
    """The newest cumulative counters in a SIPp stat file, or None before its first dump."""
    try:
        lines = stat_file.read_text(errors="replace").splitlines()
    except OSError:
        return None
    rows = [line for line in lines if line.strip()]
    if len(rows) < 2:
        return None
    header = rows[0].split(";")
    values = rows[-1].split(";")
    if len(values) < len(header) - 1:
        # SIPp may be halfway through writing the last row: use the one before it.
        if len(rows) < 3:
            return None
        values = rows[-2].split(";")
    row = dict(zip(header, values, strict=False))
    return {name: int(float(row.get(name) or 0)) for name in COUNTERS}


def read_setup_times_ms(directory: Path) -> list[float]:
    """Every call's setup time (ms) from the `*_rtt.csv` files SIPp wrote into `directory`."""
    times: list[float] = []
    for path in sorted(directory.glob("*_rtt.csv")):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                try:
                    times.append(float(parts[1]))
                except ValueError:
                    continue
    return times


@dataclass(frozen=True)
class SetupTimes:
    """Call-setup time summary for one step, in milliseconds."""

    p50: float
    p99: float
    mean: float
    count: int


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(times_ms: Sequence[float]) -> SetupTimes | None:
    """p50/p99/mean of setup times, or None when SIPp recorded none."""
    if not times_ms:
        return None
    ordered = sorted(times_ms)
    return SetupTimes(percentile(ordered, 50), percentile(ordered, 99), sum(ordered) / len(ordered),
                      len(ordered))


_ABORT = re.compile(r"Aborting call on unexpected message for Call-Id '[^']*': (while [^,]*), received '([^\r\n]*)")


def unexpected_messages(error_log: Path, top: int = 2) -> str:
    """The commonest reasons SIPp aborted calls, from its -trace_err log: what came while it waited.

    E.g. "'SIP/2.0 180 Ringing' while pausing" at the uac is a 180 the middle box delivered after
    its 200; "'INVITE' while expecting 'ACK'" at the uas is a retransmitted INVITE.
    """
    try:
        text = error_log.read_text(errors="replace")
    except OSError:
        return ""
    causes = Counter((_short(received), re.sub(r" \(index \d+\)", "", state))
                     for state, received in _ABORT.findall(text))
    return ", ".join(f"{n}x {received} {state}" for (received, state), n in causes.most_common(top))


def _short(first_line: str) -> str:
    if first_line.startswith("SIP/2.0 "):
        return first_line.removeprefix("SIP/2.0 ")[:30]
    return first_line.split(" ", 1)[0][:20]
