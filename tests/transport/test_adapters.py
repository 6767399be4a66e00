"""UDP and TCP adapters with real sockets on 127.0.0.1 port 0, around a real SipEndpoint."""

from __future__ import annotations

import asyncio
import socket

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import Event, RequestReceived
from gateway.sip.message import Request, make_response
from gateway.sip.timers import TimerSettings
from gateway.transport.runtime import SipRuntime
from gateway.transport.tcp import TcpTransport
from gateway.transport.udp import UdpTransport

HOST = "127.0.0.1"


def _options(transport: str, port: int, branch: str) -> bytes:
    return (
        f"OPTIONS sip:{HOST} SIP/2.0\r\nVia: SIP/2.0/{transport} {HOST}:{port};branch=z9hG4bK{branch};rport\r\n"
        f"From: <sip:t@{HOST}>;tag=t1\r\nTo: <sip:{HOST}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class Answerer:
    """A minimal TU: 200 to every request, and remembers what it saw."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.seen: list[Event] = []

    def __call__(self, event: Event, now: float) -> None:
        self.seen.append(event)
        if isinstance(event, RequestReceived) and event.transaction is not None:
            self.endpoint.send_response(event.transaction, make_response(event.request, 200, to_tag="x"), now)


async def _runtime(timers: TimerSettings | None = None) -> tuple[SipRuntime, Answerer]:
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0), "tcp": (HOST, 0)}, **({"timers": timers} if timers else {}))
    answerer = Answerer(endpoint)
    return SipRuntime(endpoint, answerer, asyncio.get_running_loop()), answerer


async def test_udp_request_is_answered_with_rport_and_received_stamped() -> None:
    runtime, answerer = await _runtime()
    udp = await UdpTransport.bind(runtime, HOST, 0)
    loop = asyncio.get_running_loop()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((HOST, 0))
    client.setblocking(False)
    try:
        client.sendto(_options("UDP", 9, "udp1"), udp.address)  # the Via lies about the port
        data = await asyncio.wait_for(loop.sock_recv(client, 65535), 5)
        assert data.startswith(b"SIP/2.0 200")
        # RFC 3581: the answer goes to the real source port and says where it came from.
        assert f"rport={client.getsockname()[1]}".encode() in data and b"received=127.0.0.1" in data
        assert isinstance(answerer.seen[0], RequestReceived)
    finally:
        client.close()
        udp.close()
        runtime.close()


async def test_one_loop_timer_drives_retransmissions() -> None:
    runtime, _ = await _runtime(TimerSettings(t1=0.02, t2=0.08, t4=0.1))
    udp = await UdpTransport.bind(runtime, HOST, 0)
    runtime.endpoint.sent_by["udp"] = udp.address
    loop = asyncio.get_running_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a peer that never answers
    sink.bind((HOST, 0))
    sink.setblocking(False)
    try:
        request = Request("OPTIONS", f"sip:{HOST}:{sink.getsockname()[1]}", [
            ("From", "<sip:gw@127.0.0.1>;tag=g1"), ("To", "<sip:x@127.0.0.1>"),
            ("Call-ID", "retx-1"), ("CSeq", "1 OPTIONS"),
        ])
        runtime.endpoint.send_request(request, ("udp", HOST, sink.getsockname()[1]), loop.time())
        runtime.pump(loop.time())
        copies = [await asyncio.wait_for(loop.sock_recv(sink, 65535), 5) for _ in range(3)]
        assert len({copy for copy in copies}) == 1  # the same request, retransmitted (timer E)
        assert runtime._timer is not None  # exactly one loop timer, re-armed from get_timer()
    finally:
        sink.close()
        udp.close()
        runtime.close()


async def test_tcp_answer_goes_back_on_the_same_connection() -> None:
    runtime, _ = await _runtime()
    tcp = await TcpTransport.bind(runtime, HOST, 0)
    try:
        reader, writer = await asyncio.open_connection(*tcp.address)
        port = writer.get_extra_info("sockname")[1]
        writer.write(_options("TCP", port, "tcp1")[:40])  # split across segments: framing is the endpoint's
        await writer.drain()
        writer.write(_options("TCP", port, "tcp1")[40:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.startswith(b"SIP/2.0 200")
        writer.close()
        await writer.wait_closed()
    finally:
        tcp.close()
        runtime.close()


async def test_tcp_opens_a_connection_to_a_new_target() -> None:
    runtime, _ = await _runtime()
    tcp = await TcpTransport.bind(runtime, HOST, 0)
    runtime.endpoint.sent_by["tcp"] = tcp.address
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(peer, HOST, 0)
    peer_port = server.sockets[0].getsockname()[1]
    try:
        loop = asyncio.get_running_loop()
        request = Request("OPTIONS", f"sip:{HOST}:{peer_port};transport=tcp", [
            ("From", "<sip:gw@127.0.0.1>;tag=g1"), ("To", "<sip:x@127.0.0.1>"),
            ("Call-ID", "tcp-out-1"), ("CSeq", "1 OPTIONS"),
        ])
        runtime.endpoint.send_request(request, ("tcp", HOST, peer_port), loop.time())
        runtime.pump(loop.time())
        data = await asyncio.wait_for(received.get(), 5)
        assert data.startswith(b"OPTIONS sip:") and b"SIP/2.0/TCP" in data
    finally:
        server.close()
        tcp.close()
        runtime.close()


async def test_udp_send_to_an_impossible_port_keeps_the_socket_open() -> None:
    runtime, answerer = await _runtime()
    udp = await UdpTransport.bind(runtime, HOST, 0)
    loop = asyncio.get_running_loop()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((HOST, 0))
    client.setblocking(False)
    try:
        udp.send(b"OPTIONS", ("udp", HOST, 99999))  # asyncio closes a datagram transport on OverflowError
        client.sendto(_options("UDP", client.getsockname()[1], "udp2"), udp.address)
        data = await asyncio.wait_for(loop.sock_recv(client, 65535), 5)
        assert data.startswith(b"SIP/2.0 200")
    finally:
        client.close()
        udp.close()
        runtime.close()


async def test_tcp_connect_to_an_unencodable_host_name_forgets_the_queued_data() -> None:
    # A peer's Contact decides the host; "a..b" makes getaddrinfo raise UnicodeError, not OSError.
    runtime, _ = await _runtime()
    tcp = await TcpTransport.bind(runtime, HOST, 0)
    try:
        tcp.send(b"OPTIONS", ("tcp", "a..b", 5060))
        for _ in range(50):
            if not tcp._pending:
                break
            await asyncio.sleep(0.01)
        assert tcp._pending == {}  # else every later send to it would queue forever
    finally:
        tcp.close()
        runtime.close()
