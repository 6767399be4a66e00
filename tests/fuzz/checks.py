"""What the fuzz harnesses check, for any bytes; plain Python so `make test` replays the corpus without atheris.

`check_parser(data)`: the input is one message, parsed as a datagram and as a framed stream message
(and, so the C code's branches are reached, the same again with the input as one field of a plain
message: `in_template`).
Where the C fast path (`scan_plain`) takes it, the pure-Python parser must return an equal message
(start line, headers, body and the views transactions read); where the fast path declines, Python
decides alone. Either parser may only raise `RemoteProtocolError`, with a 4xx/5xx hint, and a message
returned must not raise when what the layers above read is read.

`check_stream(data)`: the first two bytes choose the limits and how the rest is cut into chunks; the
rest fed to a `StreamParser` in one piece and in those chunks must give the same messages, errors and
keep-alive pongs in the same order.

Both raise AssertionError (or whatever escaped the parser) on a bug; the fuzzer records it as a crash.
"""

from __future__ import annotations

import random

from gateway.sip import parser
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Message, Request
from gateway.sip.parser import scan_plain, use_speedups
from gateway.sip.stream import StreamParser

# A small limit besides the default one, so inputs the fuzzer can afford reach the size checks.
SMALL_MESSAGE_LIMIT = 256


def view(message: Message) -> tuple[object, ...]:
    """Everything both parsers must agree on (and the lazily parsed views they filled)."""
    start = (message.method, message.uri) if isinstance(message, Request) else (message.status, message.reason)
    return (
        type(message), start, message.headers, message.body, message._call_id, message._cseq,
        message._top_via, message._from_tag, message._to_tag, message._cache,
    )


def _python(data: bytes, stream: bool) -> Message | RemoteProtocolError:
    use_speedups(False)
    try:
        return parser._parse(data, stream=stream)
    except RemoteProtocolError as error:
        return error
    finally:
        use_speedups(True)


def _use(message: Message) -> None:
    """Read what transactions, the B2BUA and the registrar read first; none of it may raise."""
    _ = (message.call_id, message.cseq, message.top_via.branch, message.from_tag, message.to_tag)
    _ = message.max_forwards
    if isinstance(message, Request):
        _ = message.parsed_uri


# A plain message the fast path takes, with one slot the fuzz input fills: inputs that are mostly
# garbage as a whole message still reach the C code's branches for each field this way.
_TEMPLATE = (
    b"INVITE {uri} SIP/2.0\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {callid}\r\n"
    b"CSeq: {cseq}\r\nContact: {contact}\r\nMax-Forwards: {mf}\r\nRecord-Route: {rr}\r\n"
    b"Content-Length: {cl}\r\n\r\n"
)
_PLAIN = {
    b"uri": b"sip:1001@192.0.2.1", b"via": b"SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKfz;rport",
    b"from": b'"A" <sip:a@192.0.2.9>;tag=f1', b"to": b"<sip:1001@192.0.2.1>", b"callid": b"fz-1@192.0.2.9",
    b"cseq": b"1 INVITE", b"contact": b"<sip:a@192.0.2.9:5060>", b"mf": b"70",
    b"rr": b"<sip:p1.example.com;lr>", b"cl": b"0",
}
_SLOTS = tuple(_PLAIN)


def in_template(data: bytes) -> bytes:
    """The template with the slot `data[0]` picks filled by the rest of `data`."""
    slot = _SLOTS[data[0] % len(_SLOTS)] if data else _SLOTS[0]
    message = _TEMPLATE
    for name, value in _PLAIN.items():
        message = message.replace(b"{" + name + b"}", data[1:] if name == slot else value)
    return message


def check_parser(data: bytes) -> None:
    """The contract on `data` as a whole message, and on `data` as one field of a plain message."""
    _check_parsers_agree(data)
    _check_parsers_agree(in_template(data))


def _check_parsers_agree(data: bytes) -> None:
    for stream in (False, True):
        reference = _python(data, stream)
        if isinstance(reference, RemoteProtocolError):
            assert 400 <= reference.status_hint <= 599, f"status hint {reference.status_hint}"
        fast = scan_plain(data, stream=stream)
        if fast is not None:
            assert not isinstance(reference, RemoteProtocolError), (
                f"stream={stream}: the fast path took what the Python parser refuses ({reference})"
            )
            assert view(fast) == view(reference), f"stream={stream}: the fast path and the Python parser differ"
        if not isinstance(reference, RemoteProtocolError):
            _use(reference)


def _outcomes(framer: StreamParser, chunks: list[bytes]) -> tuple[list[tuple[object, ...]], int]:
    """Feed `chunks` one by one, taking every message after each: what came out in order, and the pongs."""
    out: list[tuple[object, ...]] = []
    pongs = 0
    for chunk in chunks:
        framer.feed(chunk)
        while True:
            try:
                message = framer.next_message()
            except RemoteProtocolError as error:
                out.append(("error", str(error), error.status_hint, framer.broken))
                if framer.broken:
                    return out, pongs + framer.pop_keepalive_pongs()
                continue
            if message is None:
                break
            out.append(("message", view(message)))
        # Counted per feed, so only their number can be compared, not where they fall between messages.
        pongs += framer.pop_keepalive_pongs()
    return out, pongs


def split_stream_input(data: bytes) -> tuple[int | None, list[bytes], bytes]:
    """(message limit or None, the chunks, the whole stream) of a stream-harness input."""
    control, stream = data[:2], data[2:]
    limit = SMALL_MESSAGE_LIMIT if control[:1] and control[0] & 1 else None
    rng = random.Random(control)
    largest = 1 + (control[0] >> 1 if control else 0)
    chunks, at = [], 0
    while at < len(stream):
        size = rng.randint(1, largest)
        chunks.append(stream[at : at + size])
        at += size
    return limit, chunks, stream


def check_stream(data: bytes) -> None:
    limit, chunks, stream = split_stream_input(data)
    whole = _outcomes(StreamParser(max_message_bytes=limit), [stream])
    cut = _outcomes(StreamParser(max_message_bytes=limit), chunks)
    assert cut[0] == whole[0], "fed in chunks, the stream gave other messages or errors than fed whole"
    assert cut[1] == whole[1], f"fed in chunks, {cut[1]} keep-alive pings; fed whole, {whole[1]}"
