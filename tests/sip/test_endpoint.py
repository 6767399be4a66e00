"""SipEndpoint behaviour at its edges: bad input, streams, Via stamping, response routing, counters."""

from __future__ import annotations

import pytest

from gateway.sip.endpoint import SipEndpoint, response_target
from gateway.sip.errors import LocalProtocolError
from gateway.sip.events import MalformedMessage, RequestReceived, ResponseReceived
from gateway.sip.headers import parse_via
from tests.sip.memnet import MemNet, Node

PEER = ("udp", "192.0.2.7", 40000)


def _pair(stream_chunk: int | None = None) -> tuple[MemNet, Node, Node]:
    net = MemNet(stream_chunk=stream_chunk)
    return net, net.add("alice", 5161), net.add("bob", 5162)


def _endpoint() -> SipEndpoint:
    return SipEndpoint(sent_by={"udp": ("127.0.0.1", 5162), "tcp": ("127.0.0.1", 5162)})


def _events(endpoint: SipEndpoint) -> list[object]:
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events


def _options(via: str = "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKabc;rport", extra: str = "") -> bytes:
    return (
        "OPTIONS sip:bob@127.0.0.1:5162 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "From: <sip:alice@example.com>;tag=1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: c1@example.com\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _check_still_serving(endpoint: SipEndpoint) -> None:
    endpoint.receive_datagram(_options(via="SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKlater"), PEER, 1.0)
    assert [type(e) for e in _events(endpoint)] == [RequestReceived]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (_options().replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"), 400),
        (_options().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (_options().replace(b"sip:bob@", b"mailto:bob@", 1), 416),
        (_options(extra="Max-Forwards: 7 0\r\n"), 400),
        # §18.3: a datagram shorter than its Content-Length is an error; a request gets 400.
        (_options().replace(b"Content-Length: 0", b"Content-Length: 99"), 400),
    ],
)
def test_answerable_garbage_is_answered_and_reported(data: bytes, status: int) -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(data, PEER, 0.0)
    [malformed] = _events(endpoint)
    assert isinstance(malformed, MalformedMessage) and malformed.status == status
    [(reply, target)] = endpoint.datagrams_to_send()
    # The reply echoes the request's own (possibly broken) headers, so read it as text.
    lines = reply.decode().split("\r\n")
    assert lines[0].startswith(f"SIP/2.0 {status} ")
    [to] = [line for line in lines if line.startswith("To:")]
    assert ";tag=" in to  # §8.2.6.2
    assert target == ("udp", "192.0.2.7", 40000)  # rport + received even for a stateless reply
    assert endpoint.stats["malformed"] == 1
    _check_still_serving(endpoint)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xff\xfe garbage",
        b"HELLO\r\n\r\n",
        b"SIP/2.0 99 Weird\r\n\r\n",
        _options().replace(b"Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKabc;rport\r\n", b""),
        _options().replace(b"SIP/2.0/UDP 10.0.0.1:5070", b"SIP/2.0/UDP"),
        b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
    ],
)
def test_unanswerable_garbage_is_dropped_and_the_endpoint_keeps_working(data: bytes) -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(data, PEER, 0.0)
    [malformed] = _events(endpoint)
    assert isinstance(malformed, MalformedMessage) and malformed.status is None and malformed.reason
    assert endpoint.datagrams_to_send() == []  # no usable Via: nowhere to answer
    _check_still_serving(endpoint)


def test_received_and_rport_are_filled_and_responses_follow_them() -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(_options(), PEER, 0.0)
    [event] = _events(endpoint)
    via = event.request.top_via
    assert via.params["received"] == "192.0.2.7" and via.params["rport"] == "40000"
    assert "received=192.0.2.7" in event.request.get("Via") and "rport=40000" in event.request.get("Via")
    from gateway.sip.message import make_response

    endpoint.send_response(event.transaction, make_response(event.request, 200, to_tag="t"), 0.0)
    [(reply, target)] = endpoint.datagrams_to_send()
    assert target == ("udp", "192.0.2.7", 40000)
    assert b"rport=40000" in reply and b"received=192.0.2.7" in reply  # RFC 3581 §4: the client learns


def test_without_rport_responses_go_to_received_and_the_via_port() -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(_options(via="SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx"), PEER, 0.0)
    [event] = _events(endpoint)
    assert "rport" not in event.request.top_via.params
    assert event.transaction.response_target == ("udp", "192.0.2.7", 5070)


def test_same_host_without_rport_leaves_the_via_untouched() -> None:
    endpoint = _endpoint()
    data = _options(via="SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx")
    endpoint.receive_datagram(data, PEER, 0.0)
    [event] = _events(endpoint)
    assert event.request.get("Via") == "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx"
    assert event.transaction.response_target == ("udp", "192.0.2.7", 5060)  # §18.2.2 default port


def test_response_target_rules() -> None:
    via = parse_via("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;maddr=239.1.1.1")
    assert response_target(via, PEER) == ("udp", "239.1.1.1", 5070)
    tcp = ("tcp", "192.0.2.7", 40001)
    assert response_target(parse_via("SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKx"), tcp) == tcp


def test_tcp_stream_split_at_every_byte_carries_a_whole_call() -> None:
    net, alice, bob = _pair(stream_chunk=1)
    invite = alice.request("INVITE", bob, transport="tcp")
    invite.body = b"v=0\r\n"
    invite.add("Content-Type", "application/sdp")
    alice.endpoint.send_request(invite, bob.target("tcp"), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    assert offer.request.body == b"v=0\r\n"
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    assert [e.response.status for e in alice.take(ResponseReceived)] == [100, 200]
    assert bob.take(MalformedMessage) == []


def test_two_messages_in_one_stream_chunk_are_both_delivered() -> None:
    endpoint = _endpoint()
    tcp = ("tcp", "192.0.2.7", 40001)
    first = _options(via="SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKa")
    second = _options(via="SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKb")
    endpoint.receive_stream(tcp, first + b"\r\n\r\n" + second[:10], 0.0)
    endpoint.receive_stream(tcp, second[10:], 0.0)
    assert [type(e) for e in _events(endpoint)] == [RequestReceived, RequestReceived]
    assert (b"\r\n", tcp) in endpoint.datagrams_to_send()  # RFC 5626 pong for the CRLFCRLF ping


def test_stream_framing_error_reports_and_asks_to_close_the_connection() -> None:
    endpoint = _endpoint()
    tcp = ("tcp", "192.0.2.7", 40001)
    endpoint.receive_stream(tcp, _options().replace(b"Content-Length: 0\r\n", b""), 0.0)
    [malformed] = _events(endpoint)
    assert isinstance(malformed, MalformedMessage) and malformed.source == tcp
    assert endpoint.connections_to_close() == [tcp]
    assert endpoint.connections_to_close() == []
    other = ("tcp", "192.0.2.7", 40002)
    endpoint.receive_stream(other, _options(via="SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKc"), 0.0)
    assert [type(e) for e in _events(endpoint)] == [RequestReceived]


def test_keepalive_datagram_is_ignored() -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(b"\r\n\r\n", PEER, 0.0)
    assert _events(endpoint) == [] and endpoint.datagrams_to_send() == []


def test_send_request_adds_via_with_fresh_branch_rport_and_max_forwards() -> None:
    net, alice, bob = _pair()
    first = alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    second = alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    via = first.request.top_via
    assert via.branch.startswith("z9hG4bK") and via.branch != second.request.top_via.branch
    assert "rport" in via.params and (via.host, via.port) == ("127.0.0.1", 5161)
    assert first.request.max_forwards == 70
    assert first.request.get("User-Agent") == "memnet-alice"


def test_send_request_refuses_ack_and_unknown_transport() -> None:
    net, alice, bob = _pair()
    with pytest.raises(LocalProtocolError):
        alice.endpoint.send_request(alice.request("ACK", bob), bob.target(), net.now)
    with pytest.raises(LocalProtocolError):
        alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target("sctp"), net.now)


def test_stray_response_is_discarded() -> None:
    endpoint = _endpoint()
    stray = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5162;branch=z9hG4bKnone\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: s\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    endpoint.receive_datagram(stray, PEER, 0.0)
    assert _events(endpoint) == []
    assert endpoint.stats["responses_received.2xx"] == 1


def test_stats_count_messages_transactions_and_timeouts() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("OPTIONS", bob), ("udp", "127.0.0.1", 5999), net.now)
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    net.advance(33)
    stats = alice.endpoint.stats
    assert stats["requests_sent.OPTIONS"] == 1 and stats["requests_sent.INVITE"] == 1
    assert stats["transactions_created"] == 2 and stats["transactions_timed_out"] == 1
    assert stats["responses_received.1xx"] == 1
    assert bob.endpoint.stats["requests_received.INVITE"] == 1
    assert bob.endpoint.stats["responses_sent.1xx"] == 1
    assert client.state.value == "Proceeding"


def test_get_timer_tracks_the_earliest_deadline() -> None:
    net, alice, bob = _pair()
    assert alice.endpoint.get_timer() is None
    alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    assert alice.endpoint.get_timer() == net.now + 0.5  # Timer E = T1


def test_stats_keys_stay_bounded_whatever_methods_peers_invent() -> None:
    endpoint = _endpoint()
    for index in range(50):
        data = _options(via=f"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{index}").replace(b"OPTIONS", f"X{index}".encode())
        endpoint.receive_datagram(data, PEER, 0.0)
    assert endpoint.stats["requests_received.OTHER"] == 50
    assert not [key for key in endpoint.stats if key.startswith("requests_received.X")]


@pytest.mark.parametrize("rport", ["99999", "65536", "0"])
def test_out_of_range_rport_from_the_peer_is_ignored(rport: str) -> None:
    # RFC 3581 §4 fills rport only when it is empty; a value the peer wrote that no socket can
    # send to (asyncio closes the whole UDP transport on it) must not become the response port.
    endpoint = _endpoint()
    endpoint.receive_datagram(_options(via=f"SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKr;rport={rport}"), PEER, 0.0)
    [event] = _events(endpoint)
    assert event.transaction.response_target == ("udp", "192.0.2.7", 5070)


def test_maddr_that_is_a_host_name_is_not_followed() -> None:
    # Sending to a name makes the UDP adapter resolve it synchronously (sendto), stalling the whole
    # loop for as long as the peer's DNS wants; the sans-IO core cannot resolve, so it keeps IP literals.
    via = parse_via("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;maddr=slow.example.com;received=192.0.2.7")
    assert response_target(via, PEER) == ("udp", "192.0.2.7", 5070)
    via6 = parse_via("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;maddr=[2001:db8::1]")
    assert response_target(via6, PEER) == ("udp", "2001:db8::1", 5070)
