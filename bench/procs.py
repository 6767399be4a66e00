"""Start, watch and stop the bench's child processes, always by the PID we started."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Every process this bench started and has not yet stopped; emptied by stop_all() on the way out.
_LIVE: list[Child] = []


class Child:
    """A process started by the bench, in its own session so Ctrl-C reaches only us first."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _LIVE.append(self)

    @property
    def pid(self) -> int:
        """PID of the process we started."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if it is still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 6.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`; sippy's SIGTERM hangs up live calls first."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            if self.wait(grace_s) is None:
                self.popen.kill()
                self.popen.wait(5)
        if self in _LIVE:
            _LIVE.remove(self)

    def log_tail(self, lines: int = 6) -> str:
        """The last lines of its output, for an error message."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def stop_all() -> None:
    """Stop every child still running, newest first (the load before the box it loads)."""
    for child in reversed(list(_LIVE)):
        child.stop()


def udp_port_bound(host: str, port: int) -> bool:
    """True if some process holds UDP `host:port` (we try to bind it and let go at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll `predicate` until it holds or `timeout_s` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@dataclass(frozen=True)
class TreeUsage:
    """CPU time and memory of one process and all its descendants at one instant."""

    cpu_s: float
    rss_kb: int
    pss_kb: int
    processes: int


def _children_of(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    except (OSError, ValueError):
        pass
    return kids


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; fields after the closing parenthesis are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _memory_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pss = rss
    return rss, pss


def tree_usage(pid: int) -> TreeUsage | None:
    """Summed CPU seconds, RSS and PSS of `pid` and its descendants; None if it is gone.

    Kamailio's workers share their memory, so RSS summed over its processes counts the shared
    part once per process; PSS divides it among them and is the fair figure there.
    """
    pending, cpu, rss, pss, count = [pid], 0.0, 0, 0, 0
    while pending:
        current = pending.pop()
        try:
            cpu += _cpu_s(current)
            r, p = _memory_kb(current)
        except (OSError, IndexError, ValueError):
            if current == pid:
                return None
            continue
        rss, pss, count = rss + r, pss + p, count + 1
        pending.extend(_children_of(current))
    return TreeUsage(cpu_s=cpu, rss_kb=rss, pss_kb=pss, processes=count)
