"""Ports for the servers the tests start, picked below the kernel's ephemeral range.

A port picked by binding to port 0 comes from the ephemeral range (net.ipv4.ip_local_port_range),
the range the kernel also gives every outgoing connection and unbound UDP socket. Between the pick
and the server's own bind, any process may be given that number for a connect() of its own (the
gateway's writer, a mail bridge retrying its IMAP server, a SIPp peer): the server then fails at
start with "Address already in use" (seen once in a full run, on a gateway's admin port). The kernel
never hands out a port below that range by itself, so one picked there stays free until a test
binds it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 20000  # above the well-known and registered ports a developer's machine may be running
_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_HANDED_OUT: set[int] = set()
_CHOICE = random.Random()  # its own: tests that seed the module's random must not make ports repeat


def _ephemeral_start() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int, kinds: tuple[int, ...]) -> bool:
    sockets = []
    try:
        for kind in kinds:
            sock = socket.socket(socket.AF_INET, kind)
            sockets.append(sock)
            sock.bind((HOST, port))
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()
    return True


def free_port(*, udp: bool = True, tcp: bool = True, span: int = 1) -> int:
    """A port on 127.0.0.1 free now for `udp` and/or `tcp` (with the `span - 1` ports after it), outside
    the ephemeral range, and never the same number twice in one test session: several ports picked in a
    row (SIP, admin, SIPp's) would otherwise be free at once and could coincide."""
    kinds = (socket.SOCK_DGRAM,) * udp + (socket.SOCK_STREAM,) * tcp
    top = _ephemeral_start() - span
    if top - LOWEST < 1000:
        raise RuntimeError(f"the ephemeral port range starts at {top + span}: no room below it for test servers")
    for _ in range(1000):
        base = _CHOICE.randrange(LOWEST, top)
        ports = range(base, base + span)
        if _HANDED_OUT.intersection(ports) or not all(_bindable(port, kinds) for port in ports):
            continue
        _HANDED_OUT.update(ports)
        return base
    raise RuntimeError("no free port below the ephemeral range")
