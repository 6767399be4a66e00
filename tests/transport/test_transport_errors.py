"""Transport errors reach the transactions (RFC 3261 §18.4, §17.1.4): real sockets on 127.0.0.1, a real
SipEndpoint and SipRuntime. A refused or dead TCP connection ends its transactions with `TransportFailed`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import Event, TransportFailed
from gateway.sip.message import Request
from gateway.transport.runtime import SipRuntime
from gateway.transport.tcp import TcpTransport
from gateway.transport.udp import UdpTransport
from tests.transport.blackhole import blackhole

HOST = "127.0.0.1"
WAIT = 5.0  # a bound on a hang, not a speed requirement


class Collector:
    """A TU that keeps every event and wakes the test when a `TransportFailed` arrives."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.failed: asyncio.Queue[TransportFailed] = asyncio.Queue()

    def __call__(self, event: Event, now: float) -> None:
        self.events.append(event)
        if isinstance(event, TransportFailed):
            self.failed.put_nowait(event)


def _closed_port() -> int:
    """A TCP port nobody listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _options(port: int, call_id: str) -> Request:
    return Request("OPTIONS", f"sip:{HOST}:{port};transport=tcp", [
        ("From", f"<sip:gw@{HOST}>;tag=g1"), ("To", f"<sip:x@{HOST}>"), ("Call-ID", call_id), ("CSeq", "1 OPTIONS"),
    ])


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most WAIT) for `condition`; fail the test, saying `what`, if it never holds."""
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"{what} within {WAIT} s")


async def _tcp_runtime(connect_timeout: float = 5.0) -> tuple[SipRuntime, TcpTransport, Collector]:
    collector = Collector()
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0), "tcp": (HOST, 0)})
    runtime = SipRuntime(endpoint, collector, asyncio.get_running_loop())
    tcp = await TcpTransport.bind(runtime, HOST, 0, connect_timeout=connect_timeout)
    endpoint.sent_by["tcp"] = tcp.address
    return runtime, tcp, collector


async def test_refused_tcp_connect_fails_the_transaction_at_once() -> None:
    runtime, tcp, collector = await _tcp_runtime()
    port = _closed_port()
    loop = asyncio.get_running_loop()
    try:
        txn = runtime.endpoint.send_request(_options(port, "refused-1"), ("tcp", HOST, port), loop.time())
        runtime.pump(loop.time())
        failed = await asyncio.wait_for(collector.failed.get(), WAIT)  # Timer F would take 32 s
        assert failed.transaction is txn
        assert runtime.endpoint.stats["transport_errors"] == 1
        assert tcp._pending == {}
    finally:
        tcp.close()
        runtime.close()


async def test_request_on_a_closing_connection_goes_over_a_new_one() -> None:
    runtime, tcp, collector = await _tcp_runtime()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                received.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(peer, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    target = ("tcp", HOST, port)
    loop = asyncio.get_running_loop()
    try:
        runtime.endpoint.send_request(_options(port, "first"), target, loop.time())
        runtime.pump(loop.time())
        assert b"Call-ID: first" in await asyncio.wait_for(received.get(), WAIT)
        tcp.close_connection(target)  # closing: a write now would be dropped without a word
        runtime.endpoint.send_request(_options(port, "second"), target, loop.time())
        runtime.pump(loop.time())
        assert b"Call-ID: second" in await asyncio.wait_for(received.get(), WAIT)
        assert collector.failed.empty()
    finally:
        server.close()
        tcp.close()
        runtime.close()


async def test_request_to_a_peer_gone_for_good_fails_instead_of_vanishing() -> None:
    runtime, tcp, collector = await _tcp_runtime()
    server = await asyncio.start_server(lambda reader, writer: None, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    target = ("tcp", HOST, port)
    loop = asyncio.get_running_loop()
    try:
        first = runtime.endpoint.send_request(_options(port, "first"), target, loop.time())
        runtime.pump(loop.time())
        await _until(lambda: target in tcp.connections, "the connection to the peer never opened")
        server.close()
        await server.wait_closed()
        tcp.close_connection(target)
        second = runtime.endpoint.send_request(_options(port, "second"), target, loop.time())
        runtime.pump(loop.time())
        failed = await asyncio.wait_for(collector.failed.get(), WAIT)
        # Both waited on the same peer: neither answer can come any more.
        assert {failed.transaction, (await asyncio.wait_for(collector.failed.get(), WAIT)).transaction} == {
            first, second}
    finally:
        server.close()
        tcp.close()
        runtime.close()


async def test_tcp_connect_that_gets_no_answer_fails_its_transactions_and_drops_the_queue() -> None:
    """A blackholed peer (SYNs dropped) fails after the connect timeout, not after the kernel's ~127 s
    of SYN retries: every transaction queued behind the connect gets `TransportFailed` (RFC 3261 §18.4)
    and nothing stays queued to be written once they are dead."""
    runtime, tcp, collector = await _tcp_runtime(connect_timeout=0.3)
    loop = asyncio.get_running_loop()
    try:
        with blackhole() as port:
            target = ("tcp", HOST, port)
            first = runtime.endpoint.send_request(_options(port, "hole-1"), target, loop.time())
            second = runtime.endpoint.send_request(_options(port, "hole-2"), target, loop.time())
            runtime.pump(loop.time())
            assert tcp._pending[target]  # both wait on the one connect
            failed = {(await asyncio.wait_for(collector.failed.get(), WAIT)).transaction for _ in range(2)}
            assert failed == {first, second}
            assert tcp._pending == {} and target not in tcp.connections
    finally:
        tcp.close()
        runtime.close()


async def test_udp_send_to_an_impossible_port_fails_its_transaction() -> None:
    collector = Collector()
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0)})
    runtime = SipRuntime(endpoint, collector, asyncio.get_running_loop())
    udp = await UdpTransport.bind(runtime, HOST, 0)
    loop = asyncio.get_running_loop()
    try:
        txn = endpoint.send_request(_options(0, "port-zero"), ("udp", HOST, 0), loop.time())
        runtime.pump(loop.time())
        failed = await asyncio.wait_for(collector.failed.get(), WAIT)
        assert failed.transaction is txn
    finally:
        udp.close()
        runtime.close()
