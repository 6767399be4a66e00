"""Whatever bytes arrive, the parser answers with a message or a RemoteProtocolError, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Message, Request
from gateway.sip.parser import parse_message
from gateway.sip.stream import StreamParser
from tests.sip.data import load_corpus

SEEDS = [case.data for case in load_corpus()]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that matter to the grammar, so mutations hit separators rather than letters only.
INTERESTING = [b"\r\n", b"\r", b"\n", b":", b";", b",", b'"', b"\\", b"<", b">", b"[", b"]", b"@", b"%",
               b" ", b"\t", b"=", b"/", b"?", b"\x00", b"\xff", b"9" * 12, b"\xd9\xa3", b"SIP/2.0"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=4)))
        if action == "insert":
            data[position:position] = piece
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            data[position : position + len(piece)] = piece
    return bytes(data)


def _use(message: Message) -> None:
    """Read what the layers above read; none of it may raise on a message the parser returned."""
    _ = (message.call_id, message.cseq, message.top_via.branch, message.from_tag, message.to_tag)
    _ = message.max_forwards
    if isinstance(message, Request):
        _ = message.parsed_uri
    parse_message(message.to_bytes())


def _parse_or_reject(data: bytes) -> None:
    try:
        message = parse_message(data)
    except RemoteProtocolError as error:
        assert 400 <= error.status_hint <= 599
        if error.partial is not None:
            _ = error.partial.top_via.branch
        return
    _use(message)


def _stream_all(data: bytes, chunk: int) -> None:
    stream = StreamParser()
    for offset in range(0, len(data), chunk):
        stream.feed(data[offset : offset + chunk])
        while True:
            try:
                message = stream.next_message()
            except RemoteProtocolError:
                if stream.broken:
                    return
                continue
            if message is None:
                break
            _use(message)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)
    _stream_all(data, 64)


@FUZZ
@given(mutated())
def test_mutated_messages_only_raise_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)


@FUZZ
@given(mutated(), st.integers(1, 50))
def test_mutated_streams_only_raise_remote_protocol_error(data: bytes, chunk: int) -> None:
    _stream_all(data + data, chunk)
