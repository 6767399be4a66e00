"""Host-name next hops (RFC 3263 §4.2) resolved by a real dnsmasq, sent over real sockets on 127.0.0.1.

Each test uses its own names, so dnsmasq's query log counts that test's questions only.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.b2bua.leg import uri_target
from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import Event, RequestReceived, Target, TransportFailed
from gateway.sip.headers import parse_via
from gateway.sip.message import Request, make_response
from gateway.transport.resolver import LookupFailed, SipResolver, is_ip_literal, srv_order
from gateway.transport.runtime import SipRuntime
from gateway.transport.tcp import TcpTransport
from gateway.transport.udp import UdpTransport
from tests.transport.blackhole import blackhole
from tests.transport.conftest import DnsWorld

HOST = "127.0.0.1"
WAIT = 5.0  # a bound on a hang (Timer B/F would be 32 s), not a speed requirement


class Events:
    """A TU that keeps every event and wakes the test on `TransportFailed` and on a new request."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.failed: asyncio.Queue[TransportFailed] = asyncio.Queue()
        self.requests: asyncio.Queue[RequestReceived] = asyncio.Queue()

    def __call__(self, event: Event, now: float) -> None:
        self.seen.append(event)
        if isinstance(event, TransportFailed):
            self.failed.put_nowait(event)
        elif isinstance(event, RequestReceived):
            self.requests.put_nowait(event)


class Receiver(asyncio.DatagramProtocol):
    """A UDP socket on 127.0.0.1 that queues what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.received.put_nowait(data)


async def _receiver(port: int = 0) -> tuple[asyncio.DatagramTransport, Receiver, int]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Receiver, local_addr=(HOST, port)
    )
    return transport, protocol, transport.get_extra_info("sockname")[1]


def _resolver(world: DnsWorld, **options: object) -> SipResolver:
    return SipResolver([(HOST, world.server.port)], 2.0, **options)  # type: ignore[arg-type]


@pytest.fixture
async def udp(dns_world: DnsWorld) -> AsyncIterator[tuple[SipRuntime, UdpTransport, Events]]:
    events = Events()
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0), "tcp": (HOST, 0)})
    runtime = SipRuntime(endpoint, events, asyncio.get_running_loop(), _resolver(dns_world))
    transport = await UdpTransport.bind(runtime, HOST, 0)
    endpoint.sent_by["udp"] = transport.address
    yield runtime, transport, events
    transport.close()
    runtime.close()


def _options(target: Target, call_id: str) -> Request:
    return Request("OPTIONS", f"sip:{target[1]};transport={target[0]}", [
        ("From", f"<sip:gw@{HOST}>;tag=g1"), ("To", f"<sip:x@{target[1]}>"), ("Call-ID", call_id),
        ("CSeq", "1 OPTIONS"),
    ])


def _send_request(runtime: SipRuntime, target: Target, call_id: str) -> object:
    now = runtime.loop.time()
    txn = runtime.endpoint.send_request(_options(target, call_id), target, now)
    runtime.pump(now)
    return txn


# -- the contract with uri_target: a name without a port is port 0 ----------------------------------
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:pbx.test", ("udp", "pbx.test", 0)),
        ("sip:pbx.test;transport=tcp", ("tcp", "pbx.test", 0)),
        ("sip:pbx.test:5062", ("udp", "pbx.test", 5062)),
        ("sip:10.0.0.2", ("udp", "10.0.0.2", 5060)),
        ("sip:[::1]", ("udp", "::1", 5060)),
        ("sip:999.1.1.1", ("udp", "999.1.1.1", 0)),  # no address: the resolver refuses it, see below
    ],
)
def test_uri_target_marks_a_host_name_without_port_for_srv(uri: str, expected: Target) -> None:
    assert uri_target(uri, "udp") == expected


@pytest.mark.parametrize(
    ("host", "literal"),
    [("127.0.0.1", True), ("::1", True), ("2001:db8::5", True), ("pbx.test", False), ("1und1.de", False),
     ("10.0.0.2.example", False), ("", False), ("999.1.1.1", False), ("1.2.3.256", False),
     ("2001:db8::5::1", False), ("fe80::1:", False)],
)
def test_ip_literals_are_told_from_names(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal


# -- RFC 2782 ordering --------------------------------------------------------------------------------
records = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(1, 65535), st.sampled_from("abcdef")),
    max_size=8,
)


@given(records, st.integers(0, 1000))
def test_srv_order_is_by_priority_and_loses_no_record(entries: list[tuple[int, int, int, str]], seed: int) -> None:
    ordered = srv_order(entries, random.Random(seed))
    assert sorted(ordered) == sorted(entries)
    assert [r[0] for r in ordered] == sorted(r[0] for r in entries)


def test_srv_weight_zero_is_rarely_first_among_equal_priorities() -> None:
    rng = random.Random(7)
    heavy_first = sum(
        srv_order([(10, 0, 1, "light"), (10, 100, 2, "heavy")], rng)[0][3] == "heavy" for _ in range(200)
    )
    # RFC 2782: weight 0 is chosen with a very small probability (here 1 in 101).
    assert heavy_first > 180


# -- resolution -----------------------------------------------------------------------------------
async def test_a_record_name_with_a_port_gets_a_datagram(udp: tuple[SipRuntime, UdpTransport, Events]) -> None:
    runtime, transport, _ = udp
    sock, receiver, port = await _receiver()
    try:
        transport.send(b"hello plain", ("udp", "plain.test", port))
        assert await asyncio.wait_for(receiver.received.get(), WAIT) == b"hello plain"
    finally:
        sock.close()


async def test_srv_records_give_the_host_and_port_in_priority_order(dns_world: DnsWorld) -> None:
    resolver = _resolver(dns_world)
    addresses = await resolver.resolve(("udp", "pbx.test", 0))
    assert addresses == (("udp", HOST, dns_world.udp_first), ("udp", HOST, dns_world.udp_second))
    assert dns_world.server.queries("_sip._udp.pbx.test", "SRV") >= 1


async def test_datagram_to_a_name_without_port_goes_to_the_srv_target(
    dns_world: DnsWorld, udp: tuple[SipRuntime, UdpTransport, Events]
) -> None:
    runtime, transport, _ = udp
    first, first_receiver, _ = await _receiver(dns_world.udp_first)
    second, second_receiver, _ = await _receiver(dns_world.udp_second)
    try:
        transport.send(b"via srv", ("udp", "pbx.test", 0))
        assert await asyncio.wait_for(first_receiver.received.get(), WAIT) == b"via srv"
        assert second_receiver.received.empty()
    finally:
        first.close()
        second.close()


async def test_a_port_in_the_uri_skips_srv(dns_world: DnsWorld) -> None:
    resolver = _resolver(dns_world)
    # §4.2: with a port, the A record of pbx.test (127.0.0.3), not its SRV targets.
    assert await resolver.resolve(("udp", "pbx.test", 5999)) == (("udp", "127.0.0.3", 5999),)


async def test_a_name_without_srv_records_uses_its_address_and_the_default_port(dns_world: DnsWorld) -> None:
    resolver = _resolver(dns_world)
    assert await resolver.resolve(("tcp", "plain.test", 0)) == (("tcp", HOST, 5060),)
    assert dns_world.server.queries("_sip._tcp.plain.test", "SRV") >= 1


async def test_srv_target_dot_means_no_service(dns_world: DnsWorld) -> None:
    with pytest.raises(LookupFailed):
        await _resolver(dns_world).resolve(("udp", "noservice.test", 0))


async def test_nxdomain_fails_the_transaction_at_once(udp: tuple[SipRuntime, UdpTransport, Events]) -> None:
    runtime, transport, events = udp
    txn = _send_request(runtime, ("udp", "nope.test", 0), "nx-1")
    failed = await asyncio.wait_for(events.failed.get(), WAIT)
    assert failed.transaction is txn
    assert transport.lookups.waiting == {}


async def test_a_dns_server_that_never_answers_fails_the_transaction(dns_world: DnsWorld) -> None:
    """The 'server' is a bound UDP socket that reads nothing: a real black hole, as a dead resolver is."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        events = Events()
        endpoint = SipEndpoint(sent_by={"udp": (HOST, 0)})
        resolver = SipResolver([(HOST, silent.getsockname()[1])], 0.3)
        runtime = SipRuntime(endpoint, events, asyncio.get_running_loop(), resolver)
        transport = await UdpTransport.bind(runtime, HOST, 0)
        try:
            txn = _send_request(runtime, ("udp", "plain.test", 0), "timeout-1")
            failed = await asyncio.wait_for(events.failed.get(), WAIT)
            assert failed.transaction is txn
            assert resolver.cached(("udp", "plain.test", 0)) == ()  # remembered, briefly
        finally:
            transport.close()
            runtime.close()


async def test_no_address_of_the_socket_family_is_a_transport_error(
    udp: tuple[SipRuntime, UdpTransport, Events],
) -> None:
    runtime, _, events = udp
    txn = _send_request(runtime, ("udp", "v6only.test", 5062), "v6-1")  # an IPv4 socket, an AAAA record only
    failed = await asyncio.wait_for(events.failed.get(), WAIT)
    assert failed.transaction is txn


# -- the cache ------------------------------------------------------------------------------------
async def test_second_send_uses_the_cache_without_asking_dns(
    dns_world: DnsWorld, udp: tuple[SipRuntime, UdpTransport, Events]
) -> None:
    runtime, transport, _ = udp
    sock, receiver, port = await _receiver()
    target = ("udp", "cached.test", port)
    try:
        transport.send(b"one", target)
        assert await asyncio.wait_for(receiver.received.get(), WAIT) == b"one"
        transport.send(b"two", target)
        assert transport.lookups.waiting == {}  # a cache hit is sent at once, no lookup task
        assert await asyncio.wait_for(receiver.received.get(), WAIT) == b"two"
        assert dns_world.server.queries("cached.test", "A") == 1
    finally:
        sock.close()


async def test_datagrams_sent_while_resolving_wait_for_one_lookup(
    dns_world: DnsWorld, udp: tuple[SipRuntime, UdpTransport, Events]
) -> None:
    runtime, transport, _ = udp
    sock, receiver, port = await _receiver()
    target = ("udp", "burst.test", port)
    try:
        for n in range(3):
            transport.send(f"burst {n}".encode(), target)
        assert len(transport.lookups.waiting[target]) == 3
        got = [await asyncio.wait_for(receiver.received.get(), WAIT) for _ in range(3)]
        assert got == [b"burst 0", b"burst 1", b"burst 2"]
        assert dns_world.server.queries("burst.test", "A") == 1
    finally:
        sock.close()


async def test_waiting_datagrams_are_bounded(udp: tuple[SipRuntime, UdpTransport, Events]) -> None:
    runtime, transport, _ = udp
    target = ("udp", "nope-flood.test", 5062)
    for _ in range(transport.lookups.limit + 10):
        transport.send(b"x", target)
    assert len(transport.lookups.waiting[target]) == transport.lookups.limit
    assert transport.lookups.dropped == 10


async def test_a_failure_is_cached_briefly(dns_world: DnsWorld) -> None:
    resolver = _resolver(dns_world)
    for _ in range(2):
        with pytest.raises(LookupFailed):
            await resolver.resolve(("udp", "gone.test", 5062))
    assert dns_world.server.queries("gone.test", "A") == 1
    assert resolver.lookups == 1


async def test_an_answer_expires_with_its_ttl(dns_world: DnsWorld) -> None:
    """The clock is a variable the test moves; DNS and its TTL (60 s) are real."""
    now = [1000.0]
    resolver = _resolver(dns_world, clock=lambda: now[0])
    target = ("udp", "expiring.test", 5062)
    await resolver.resolve(target)
    now[0] += 59.0
    assert resolver.cached(target) == (("udp", HOST, 5062),)
    now[0] += 1.0
    assert resolver.cached(target) is None
    await resolver.resolve(target)
    assert dns_world.server.queries("expiring.test", "A") == 2


async def test_the_cache_is_bounded_least_recently_used_first(dns_world: DnsWorld) -> None:
    resolver = _resolver(dns_world, max_entries=2)
    first, second, third = (("udp", f"lru{n}.test", 5062) for n in (1, 2, 3))
    await resolver.resolve(first)
    await resolver.resolve(second)
    assert resolver.cached(first) is not None  # now the most recently used
    await resolver.resolve(third)
    assert resolver.cached(second) is None
    assert resolver.cached(first) is not None and resolver.cached(third) is not None


@pytest.mark.parametrize("host", ["999.1.1.1", "10.0.0.300", "1.2.3", "2001:db8::5::1"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_invalid_ip_literal_fails_the_transaction_without_asking_dns(
    dns_world: DnsWorld, host: str, transport: str
) -> None:
    """Neither an address nor a host name (RFC 1123 §2.1): 503 at once, not a 408 after Timer B."""
    events = Events()
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0), "tcp": (HOST, 0)})
    runtime = SipRuntime(endpoint, events, asyncio.get_running_loop(), _resolver(dns_world))
    adapter = await (UdpTransport if transport == "udp" else TcpTransport).bind(runtime, HOST, 0)
    try:
        txn = _send_request(runtime, (transport, host, 5060), f"bad-literal-{transport}-{host}")
        failed = await asyncio.wait_for(events.failed.get(), WAIT)
        assert failed.transaction is txn
        assert dns_world.server.queries(host, "A") == 0
    finally:
        adapter.close()
        runtime.close()


async def test_ip_literals_never_reach_the_resolver(udp: tuple[SipRuntime, UdpTransport, Events]) -> None:
    runtime, transport, _ = udp
    sock, receiver, port = await _receiver()
    try:
        transport.send(b"literal", ("udp", HOST, port))
        assert await asyncio.wait_for(receiver.received.get(), WAIT) == b"literal"
        assert runtime.resolver.lookups == 0
    finally:
        sock.close()


# -- TCP ------------------------------------------------------------------------------------------
async def _tcp(world: DnsWorld, **options: float) -> tuple[SipRuntime, TcpTransport, Events]:
    events = Events()
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0), "tcp": (HOST, 0)})
    runtime = SipRuntime(endpoint, events, asyncio.get_running_loop(), _resolver(world))
    transport = await TcpTransport.bind(runtime, HOST, 0, **options)
    endpoint.sent_by["tcp"] = transport.address
    return runtime, transport, events


class TcpPeer:
    """A TCP server on 127.0.0.1 that queues every chunk it reads and counts the connections it accepts."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.accepted = 0
        self.greeting = greeting  # written as soon as a connection is accepted
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._peer, HOST, port)
        return self.server.sockets[0].getsockname()[1]

    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.write(self.greeting)
        while chunk := await reader.read(65535):
            self.received.put_nowait(chunk)
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_tcp_connection_to_a_name_is_kept_under_the_name(dns_world: DnsWorld) -> None:
    runtime, transport, _ = await _tcp(dns_world)
    peer = TcpPeer()
    target = ("tcp", "tcpname.test", await peer.start())
    try:
        transport.send(b"over tcp", target)
        assert await asyncio.wait_for(peer.received.get(), WAIT) == b"over tcp"
        assert runtime.is_connected(target)  # the name, not the address, keys the connection for reuse
        transport.send(b"again", target)
        assert await asyncio.wait_for(peer.received.get(), WAIT) == b"again"
        assert peer.accepted == 1
        assert dns_world.server.queries("tcpname.test", "A") == 1
    finally:
        peer.close()
        transport.close()
        runtime.close()


async def test_tcp_tries_the_next_srv_target_when_a_connect_is_refused(dns_world: DnsWorld) -> None:
    runtime, transport, events = await _tcp(dns_world)
    peer = TcpPeer()
    await peer.start(dns_world.tcp_up)  # priority 20; nothing listens on priority 10's port
    try:
        transport.send(b"second choice", ("tcp", "pbx.test", 0))
        assert await asyncio.wait_for(peer.received.get(), WAIT) == b"second choice"
        assert events.failed.empty()
    finally:
        peer.close()
        transport.close()
        runtime.close()


async def test_tcp_to_a_name_that_does_not_exist_fails_the_transaction(dns_world: DnsWorld) -> None:
    runtime, transport, events = await _tcp(dns_world)
    try:
        txn = _send_request(runtime, ("tcp", "nope-tcp.test", 0), "nx-tcp")
        failed = await asyncio.wait_for(events.failed.get(), WAIT)
        assert failed.transaction is txn
        assert transport._pending == {}
    finally:
        transport.close()
        runtime.close()


async def test_tcp_tries_the_next_srv_target_when_a_connect_gets_no_answer(dns_world: DnsWorld) -> None:
    """A blackholed SRV target (SYNs dropped) costs one connect timeout, then the next target is used:
    the kernel alone would keep retrying the SYN for ~127 s, past Timer B (RFC 3263 §4.3)."""
    runtime, transport, events = await _tcp(dns_world, connect_timeout=0.3)
    peer = TcpPeer()
    await peer.start(dns_world.tcp_up)  # priority 20; priority 10 swallows SYNs
    try:
        with blackhole(dns_world.tcp_hole):
            transport.send(b"after the hole", ("tcp", "slow.test", 0))
            assert await asyncio.wait_for(peer.received.get(), WAIT) == b"after the hole"
        assert events.failed.empty()
    finally:
        peer.close()
        transport.close()
        runtime.close()


async def test_requests_over_a_connection_to_a_name_come_from_the_peer_address(dns_world: DnsWorld) -> None:
    """What a peer sends back over a connection we opened to `pbx.test` (SRV, no port) comes from its
    address: Via gets received=<ip>;rport=<its port> (RFC 3261 §18.2.1, RFC 3581 §4), never the name
    and port 0, and the answer goes back over the same connection."""
    runtime, transport, events = await _tcp(dns_world)
    peer = TcpPeer(
        b"OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP pbx.test;branch=z9hG4bKback1;rport\r\n"
        b"From: <sip:pbx@pbx.test>;tag=p1\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: back-1\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    await peer.start(dns_world.tcp_up)
    try:
        _send_request(runtime, ("tcp", "pbx.test", 0), "out-1")
        received = await asyncio.wait_for(events.requests.get(), WAIT)
        assert received.source == ("tcp", HOST, dns_world.tcp_up)
        via = parse_via(received.request.get_all("Via")[0])
        assert (via.params["received"], via.params["rport"]) == (HOST, str(dns_world.tcp_up))
        assert received.transaction is not None
        now = runtime.loop.time()
        runtime.endpoint.send_response(received.transaction, make_response(received.request, 200, to_tag="g1"), now)
        runtime.pump(now)
        answer = b""
        while b"SIP/2.0 200" not in answer:
            answer += await asyncio.wait_for(peer.received.get(), WAIT)
        assert peer.accepted == 1
    finally:
        peer.close()
        transport.close()
        runtime.close()
