"""Whatever bytes arrive, the endpoint neither raises nor stops serving (SIP: answer 400 or drop)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import MalformedMessage, RequestReceived

SOURCE_UDP = ("udp", "192.0.2.1", 5555)
SOURCE_TCP = ("tcp", "192.0.2.1", 5556)

VALID = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5555;branch=z9hG4bKfuzz;rport\r\n"
    b"From: <sip:alice@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\n"
    b"Call-ID: fuzz@a\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@192.0.2.1:5555>\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 4\r\n\r\nv=0\n"
)

mutations = st.lists(
    st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=0, max_size=4)), min_size=1, max_size=6
)


def _mutate(edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(VALID)
    for position, replacement in edits:
        position %= max(len(data), 1)
        data[position : position + len(replacement) or position + 1] = replacement
    return bytes(data)


def _endpoint() -> SipEndpoint:
    return SipEndpoint(sent_by={"udp": ("127.0.0.1", 5162), "tcp": ("127.0.0.1", 5162)})


def _drain(endpoint: SipEndpoint) -> list[object]:
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events


def _still_serves(endpoint: SipEndpoint, source: tuple[str, str, int]) -> None:
    fresh = VALID.replace(b"z9hG4bKfuzz", b"z9hG4bKafter").replace(b"fuzz@a", b"after@a")
    if source[0] == "udp":
        endpoint.receive_datagram(fresh, source, 2.0)
    else:
        endpoint.receive_stream(("tcp", "192.0.2.1", 6000), fresh, 2.0)
    assert [type(e) for e in _drain(endpoint)] == [RequestReceived]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations)
def test_mutated_datagrams_never_raise(edits: list[tuple[int, bytes]]) -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(_mutate(edits), SOURCE_UDP, 1.0)
    endpoint.handle_timer(40.0)
    for event in _drain(endpoint):
        if isinstance(event, MalformedMessage) and event.status is not None:
            assert 400 <= event.status < 600
    endpoint.datagrams_to_send()
    _still_serves(endpoint, SOURCE_UDP)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_datagrams_never_raise(data: bytes) -> None:
    endpoint = _endpoint()
    endpoint.receive_datagram(data, SOURCE_UDP, 1.0)
    _drain(endpoint)
    _still_serves(endpoint, SOURCE_UDP)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations, st.integers(1, 40))
def test_mutated_streams_never_raise(edits: list[tuple[int, bytes]], chunk: int) -> None:
    endpoint = _endpoint()
    data = _mutate(edits) + VALID.replace(b"z9hG4bKfuzz", b"z9hG4bKnext")
    for offset in range(0, len(data), chunk):
        endpoint.receive_stream(SOURCE_TCP, data[offset : offset + chunk], 1.0)
    _drain(endpoint)
    endpoint.datagrams_to_send()
    _still_serves(endpoint, SOURCE_TCP)
