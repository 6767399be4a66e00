"""A stream message past the size limit (issue 14 part 3): refused with 513 when its header block is
complete (then the connection closes), just closed when it is not; `stream_buffered` tells a partial
message from none."""

from __future__ import annotations

import pytest

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.events import MalformedMessage
from gateway.sip.stream import StreamParser

TCP = ("tcp", "192.0.2.7", 5070)


def _options(length: int = 0, pad: int = 0) -> bytes:
    return (
        "OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bKlim\r\n"
        "From: <sip:a@192.0.2.7>;tag=a\r\nTo: <sip:gw@192.0.2.1>\r\nCall-ID: lim-1\r\nCSeq: 1 OPTIONS\r\n"
        f"{'X-Pad: ' + 'p' * pad + chr(13) + chr(10) if pad else ''}Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_message_past_the_limit_carries_the_request_to_answer() -> None:
    stream = StreamParser(max_message_bytes=1024)
    stream.feed(_options(length=1024))
    with pytest.raises(RemoteProtocolError) as caught:
        stream.next_message()
    assert caught.value.status_hint == 513 and stream.broken
    assert caught.value.partial is not None and caught.value.partial.call_id == "lim-1"


def test_a_header_block_past_the_limit_without_its_end_has_nothing_to_answer() -> None:
    stream = StreamParser(max_message_bytes=1024)
    stream.feed(_options(pad=2000)[:-4])
    with pytest.raises(RemoteProtocolError) as caught:
        stream.next_message()
    assert caught.value.status_hint == 513 and caught.value.partial is None and stream.broken


def test_a_message_at_the_limit_passes() -> None:
    head = _options(length=0)
    stream = StreamParser(max_message_bytes=1024)
    body_length = 1024 - len(_options(length=1000))  # Content-Length of the same width
    stream.feed(_options(length=body_length) + b"b" * body_length)
    message = stream.next_message()
    assert message is not None and len(message.body) == body_length and len(head) < 1024


def test_the_endpoint_answers_513_then_closes_and_counts() -> None:
    endpoint = SipEndpoint(sent_by={"tcp": ("192.0.2.1", 5060)}, max_stream_message=1024)
    endpoint.receive_stream(TCP, _options(length=5000), 0.0)
    sent = endpoint.datagrams_to_send()
    assert len(sent) == 1 and sent[0][0].startswith(b"SIP/2.0 513 ") and sent[0][1] == TCP
    assert endpoint.connections_to_close() == [TCP]
    assert endpoint.stats["messages_too_large"] == 1
    event = endpoint.next_event()
    assert isinstance(event, MalformedMessage) and event.status == 513


def test_stream_buffered_counts_only_a_partial_message() -> None:
    endpoint = SipEndpoint(sent_by={"tcp": ("192.0.2.1", 5060)})
    message = _options()
    assert endpoint.stream_buffered(TCP) == 0
    endpoint.receive_stream(TCP, message[:10], 0.0)
    assert endpoint.stream_buffered(TCP) == 10
    endpoint.receive_stream(TCP, message[10:] + message[:3], 0.0)
    assert endpoint.stream_buffered(TCP) == 3


def test_a_head_at_the_limit_cut_inside_its_blank_line_waits_for_the_rest() -> None:
    # Found by the fuzzer (tests/fuzz/corpus/stream/crash-head-limit-boundary-*): the blank line's first
    # bytes pushed the buffer past the limit, so the segmentation decided whether the message passed.
    message = _options()
    stream = StreamParser(max_header_bytes=len(message) - 4)
    stream.feed(message[:-1])
    assert stream.next_message() is None and not stream.broken
    stream.feed(message[-1:])
    parsed = stream.next_message()
    assert parsed is not None and parsed.call_id == "lim-1"
