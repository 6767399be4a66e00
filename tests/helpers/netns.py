"""Network namespaces made by a test, and faults on the wire inside one.

    with Namespace() as namespace, namespace.entered():
        gateway = start_gateway(...)            # every process started here lives in the namespace
        with LossyWire(namespace, gateway.sip_port, WireFaults(), directory) as wire:
            ... calls ...
            wire.counts()                       # {"dropped": 31, "duplicated": 5, "delayed": 140}

`Namespace` is `ip netns add` with its loopback up (127.0.0.1 there is nobody else's), deleted on exit.
`entered()` moves the calling thread into it with setns(2), as `ip netns exec` does: the processes the
test starts from that thread (the gateway, SIPp) are born there and the sockets it opens (the admin API
client) are made there, so the integration kits work unchanged.

Why not netem: `tc qdisc ... netem` is what the issue names, but this sandbox's kernel is built without
it (CONFIG_NET_SCH_NETEM is not set, no modules to load); `netem_available()` says whether it is. The
faults are made by the kernel's netfilter inside the namespace instead, on UDP to and from one port:
loss is `-m statistic --mode random -j DROP` on input (so the sender's sendto still succeeds, as on a
real lossy link), duplication `-j TEE` (a clone routed to the same address), reordering `-j NFQUEUE`
of a random share of the packets to tests/helpers/nfqueue_delay.py, which holds each one `delay_ms`
while the others pass: a packet sent meanwhile overtakes it.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CLONE_NEWNET = 0x40000000
REPO = Path(__file__).resolve().parents[2]
_NAMES = itertools.count(1)
_LIBC = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def network_namespace_of(pid: int) -> int:
    """The inode naming the network namespace process `pid` lives in."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


class Namespace:
    """A network namespace of the test's own, with a unique name; deleted by `delete()` or on exit."""

    def __init__(self, prefix: str = "gwtest") -> None:
        self.name = f"{prefix}-{os.getpid()}-{next(_NAMES)}"
        self.created = False

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def create(self) -> Namespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.created = True
        try:
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
            self.created = False

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str) -> str:
        """Run `argv` inside the namespace; its stdout, or CalledProcessError with its stderr."""
        done = subprocess.run(self.command(*argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        return done.stdout

    def inode(self) -> int:
        return self.path.stat().st_ino

    @contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside the namespace for the block, back where it was afterwards."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def __enter__(self) -> Namespace:
        return self.create()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.delete()


def netem_available(namespace: Namespace) -> bool:
    """Whether the kernel has the netem qdisc (tried on the namespace's loopback, then removed)."""
    added = subprocess.run(namespace.command("tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss", "1%"),
                           capture_output=True)
    if added.returncode == 0:
        subprocess.run(namespace.command("tc", "qdisc", "del", "dev", "lo", "root"), capture_output=True)
    return added.returncode == 0


@dataclass(frozen=True)
class WireFaults:
    """What happens to each UDP packet to or from the port: the shares are probabilities (0.05 is 5 %)."""

    loss: float = 0.05
    duplicate: float = 0.01
    reorder: float = 0.25  # the share held back `delay_ms`, overtaken by what is sent meanwhile
    delay_ms: int = 20


# (table, chain, interface option, what the rule does, the counter it feeds)
_RULES = (
    ("filter", "INPUT", "-i", "loss", ["-j", "DROP"], "dropped"),
    ("mangle", "OUTPUT", "-o", "duplicate", ["-j", "TEE", "--gateway", "127.0.0.1"], "duplicated"),
    ("filter", "OUTPUT", "-o", "reorder", ["-j", "NFQUEUE", "--queue-num", "{queue}", "--queue-bypass"], "delayed"),
)
_COUNTED = re.compile(r"^\s*(\d+)\s+\d+\s+(\w+)\s.*?(sport|dpt|spt):(\d+)", re.MULTILINE)


class LossyWire:
    """The faults of `faults` on UDP to and from `port` over the namespace's loopback, both directions."""

    QUEUE = 7

    def __init__(self, namespace: Namespace, port: int, faults: WireFaults, directory: Path) -> None:
        self.namespace = namespace
        self.port = port
        self.faults = faults
        self.log_path = directory / f"nfqueue-delay-{namespace.name}.log"
        self.delayer: subprocess.Popen[str] | None = None

    def start(self) -> LossyWire:
        self._start_delayer()
        try:
            for table, chain, interface, fault, action, _ in _RULES:
                share = getattr(self.faults, fault)
                for direction in ("--dport", "--sport"):
                    self.namespace.run(
                        "iptables", "-t", table, "-A", chain, interface, "lo", "-p", "udp", direction, str(self.port),
                        "-m", "statistic", "--mode", "random", "--probability", f"{share:.4f}",
                        *[part.format(queue=self.QUEUE) for part in action])
        except BaseException:
            self.stop()
            raise
        return self

    def _start_delayer(self) -> None:
        with self.log_path.open("w") as log:
            self.delayer = subprocess.Popen(
                self.namespace.command(sys.executable, "-m", "tests.helpers.nfqueue_delay", "--queue",
                                       str(self.QUEUE), "--delay-ms", str(self.faults.delay_ms)),
                stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        assert self.delayer.stdout is not None
        ready = self.delayer.stdout.readline().strip()
        if ready != "ready":
            self.delayer.wait(5)
            raise RuntimeError(f"the NFQUEUE delayer did not start: {self.log_path.read_text()}")

    def counts(self) -> dict[str, int]:
        """How many packets each fault took so far, per the kernel's rule counters."""
        totals = {counter: 0 for *_, counter in _RULES}
        targets = {action[1]: counter for *_, action, counter in _RULES}
        for table in ("filter", "mangle"):
            listing = self.namespace.run("iptables", "-t", table, "-L", "-v", "-x", "-n")
            for packets, target, _, port in _COUNTED.findall(listing):
                if target in targets and int(port) == self.port:
                    totals[targets[target]] += int(packets)
        return totals

    def stop(self) -> None:
        """Rules flushed (packets flow cleanly again), the delayer stopped by its PID."""
        for table in ("filter", "mangle"):
            subprocess.run(self.namespace.command("iptables", "-t", table, "-F"), capture_output=True)
        if self.delayer is not None and self.delayer.poll() is None:
            self.delayer.terminate()
            try:
                self.delayer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.delayer.kill()
                self.delayer.wait()
        if self.delayer is not None and self.delayer.stdout is not None:
            self.delayer.stdout.close()

    def __enter__(self) -> LossyWire:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
