"""TCP abuse against the real gateway process (issue 14 part 3; no SPEC rule covers it): connection
caps in all and per source, idle connections, oversized messages and a header trickled byte by byte
are cut off, and an honest client on another connection is served meanwhile. Loopback only:
127.0.0.x addresses are distinct sources. The limits are small so each test takes a second or two.
"""

from __future__ import annotations

import re
import select
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration.conftest import HOST, GatewayProcess, start_gateway, stop_gateway

IDLE = 1.5
RECEIVE = 1.0
MAX_MESSAGE = 4096
LIMITS = f"""
tcp_max_connections = 4
tcp_max_connections_per_source = 2
tcp_idle_seconds = {IDLE}
max_message_bytes = {MAX_MESSAGE}
message_receive_seconds = {RECEIVE}
"""
# A refused connection is closed as soon as it is accepted: well before any timer could have done it.
AT_ONCE = 0.5
# The gateway sweeps its timers four times per shortest limit: a limit holds within a quarter of itself.
SLACK = 0.6


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    running = start_gateway(tmp_path_factory.mktemp("tcp-abuse"), extra_sip=LIMITS)
    try:
        yield running
    finally:
        stop_gateway(running)


@pytest.fixture(autouse=True)
def _no_connections_left(gateway: GatewayProcess) -> None:
    """Each test starts with no connection open at the gateway (those of the last test are gone)."""
    deadline = time.monotonic() + IDLE + 2
    while _metric(gateway, "gateway_tcp_connections_open") != 0:
        assert time.monotonic() < deadline, "connections of an earlier test are still open"
        time.sleep(0.05)


def _metric(gateway: GatewayProcess, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(f"http://{HOST}:{gateway.admin_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    selector = "{" + labels + "}" if labels else ""
    found = re.search(rf"^{re.escape(name + selector)} (\S+)$", text, re.M)
    assert found is not None, f"{name}{selector} not in /metrics"
    return float(found.group(1))


def _connect(gateway: GatewayProcess, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect((HOST, gateway.sip_port))
    return sock


def _options(sock: socket.socket, call_id: str, *, extra: str = "", length: int = 0) -> bytes:
    local_host, local_port = sock.getsockname()
    return (
        f"OPTIONS sip:{HOST} SIP/2.0\r\nVia: SIP/2.0/TCP {local_host}:{local_port};branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:probe@{local_host}>;tag=p1\r\nTo: <sip:{HOST}>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: {length}\r\n\r\n"
    ).encode()


def _answered(sock: socket.socket, call_id: str) -> bool:
    """Send an OPTIONS and read its answer: the connection is open and served."""
    sock.sendall(_options(sock, call_id))
    answer = sock.recv(65535)
    return answer.startswith(b"SIP/2.0 200") and f"Call-ID: {call_id}".encode() in answer


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float] | None:
    """Everything the gateway sent before closing and how long the close took; None if still open."""
    started = time.monotonic()
    received = b""
    while (left := started + within - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return None
        try:
            chunk = sock.recv(65535)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return None


def test_connections_past_the_per_source_cap_are_closed_at_once(gateway: GatewayProcess) -> None:
    refused_before = _metric(gateway, "gateway_tcp_connections_refused_total", 'reason="source_cap"')
    first, second = _connect(gateway, "127.0.0.2"), _connect(gateway, "127.0.0.2")
    third = _connect(gateway, "127.0.0.2")
    elsewhere = _connect(gateway, "127.0.0.3")
    with first, second, third, elsewhere:
        assert _answered(first, "src-1") and _answered(second, "src-2")
        closed = _read_until_closed(third, AT_ONCE)
        assert closed is not None and closed[0] == b""
        assert _answered(elsewhere, "src-other")  # another address has its own share
    assert _metric(gateway, "gateway_tcp_connections_refused_total", 'reason="source_cap"') == refused_before + 1


def test_connections_past_the_total_cap_are_closed_and_a_freed_place_is_reused(gateway: GatewayProcess) -> None:
    refused_before = _metric(gateway, "gateway_tcp_connections_refused_total", 'reason="total_cap"')
    admitted = [_connect(gateway, f"127.0.0.{host}") for host in range(4, 8)]
    try:
        assert all(_answered(sock, f"all-{i}") for i, sock in enumerate(admitted))
        with _connect(gateway, "127.0.0.8") as over:
            closed = _read_until_closed(over, AT_ONCE)
            assert closed is not None and closed[0] == b""
        admitted.pop().close()
        deadline = time.monotonic() + 2
        while _metric(gateway, "gateway_tcp_connections_open") != 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with _connect(gateway, "127.0.0.8") as again:
            assert _answered(again, "all-again")
    finally:
        for sock in admitted:
            sock.close()
    assert _metric(gateway, "gateway_tcp_connections_refused_total", 'reason="total_cap"') == refused_before + 1


def test_an_idle_connection_is_closed_and_a_kept_alive_one_is_not(gateway: GatewayProcess) -> None:
    idle_before = _metric(gateway, "gateway_tcp_connections_closed_total", 'reason="idle"')
    with _connect(gateway, "127.0.0.9") as idle, _connect(gateway, "127.0.0.10") as kept:
        assert _answered(idle, "idle-1") and _answered(kept, "kept-1")
        started = time.monotonic()
        closed_after: float | None = None
        while time.monotonic() - started < IDLE + SLACK + 0.5:
            kept.sendall(b"\r\n\r\n")  # RFC 5626 keep-alive: the gateway answers with one CRLF
            assert kept.recv(16) == b"\r\n"
            if closed_after is None and _read_until_closed(idle, 0.01) is not None:
                closed_after = time.monotonic() - started
            time.sleep(0.3)
        assert closed_after is not None and IDLE - 0.1 <= closed_after <= IDLE + SLACK
        assert _answered(kept, "kept-2")
    assert _metric(gateway, "gateway_tcp_connections_closed_total", 'reason="idle"') == idle_before + 1


def test_an_oversized_message_gets_513_and_the_connection_is_closed(gateway: GatewayProcess) -> None:
    too_large_before = _metric(gateway, "gateway_sip_messages_too_large_total")
    with _connect(gateway, "127.0.0.11") as sock:
        sock.sendall(_options(sock, "big-body", length=MAX_MESSAGE))  # the header block is complete
        closed = _read_until_closed(sock, 2)
        assert closed is not None and closed[0].startswith(b"SIP/2.0 513 ")
        assert b"Call-ID: big-body" in closed[0]
    with _connect(gateway, "127.0.0.11") as sock:
        sock.sendall(_options(sock, "big-head")[:-4] + b"\r\nX-Pad: " + b"a" * MAX_MESSAGE)  # no blank line
        closed = _read_until_closed(sock, 2)
        assert closed is not None and closed[0] == b""  # nothing to answer: just closed
    with _connect(gateway, "127.0.0.11") as sock:
        pad = "X-Pad: " + "a" * (MAX_MESSAGE - 400) + "\r\n"  # just under the limit, to prove where it lies
        sock.sendall(_options(sock, "fits", extra=pad))
        assert sock.recv(65535).startswith(b"SIP/2.0 200")
    assert _metric(gateway, "gateway_sip_messages_too_large_total") == too_large_before + 2


def test_a_trickled_header_is_cut_off_while_another_client_is_served(gateway: GatewayProcess) -> None:
    slow_before = _metric(gateway, "gateway_tcp_connections_closed_total", 'reason="slow_message"')
    with _connect(gateway, "127.0.0.12") as slow, _connect(gateway, "127.0.0.13") as honest:
        message = _options(slow, "trickle")
        started = time.monotonic()
        closed_after: float | None = None
        for index, byte in enumerate(message):
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            if index == 3:
                assert _answered(honest, "honest")  # served while the trickle goes on
            if _read_until_closed(slow, 0.1) is not None:
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "the whole trickled message got through"
        assert RECEIVE - 0.1 <= closed_after <= RECEIVE + SLACK
        assert _answered(honest, "honest-after")
    assert _metric(gateway, "gateway_tcp_connections_closed_total", 'reason="slow_message"') == slow_before + 1
