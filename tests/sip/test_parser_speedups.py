"""The C fast path (`gateway/sip/_speedups.c`) against the Python parser, which is the reference.

The contract: for any bytes, when the fast path returns a message, the Python parser returns an equal
one (start line, headers, body and every view the parser fills) and does not raise; everything else
the fast path declines. A fast path that declined everything would pass that, so the common messages
of real calls are also required to take it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.parse_bench import INVITE
from gateway.sip import parser
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Message, Request
from gateway.sip.parser import parse_message, scan_plain, use_speedups
from gateway.sip.stream import StreamParser
from tests.sip.data import load_corpus
from tests.sip.test_parser_fuzz import mutated

ROOT = Path(__file__).resolve().parents[2]
CORPUS = [case.data for case in load_corpus()]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _speedups_back_on() -> Iterator[None]:
    yield
    use_speedups(True)


def _python(data: bytes, *, stream: bool = False) -> Message | RemoteProtocolError:
    use_speedups(False)
    try:
        return parser._parse(data, stream=stream)
    except RemoteProtocolError as error:
        return error
    finally:
        use_speedups(True)


def _view(message: Message) -> tuple[object, ...]:
    start = (message.method, message.uri) if isinstance(message, Request) else (message.status, message.reason)
    return (
        type(message), start, message.headers, message.body, message._call_id, message._cseq,
        message._top_via, message._from_tag, message._to_tag, message._cache,
    )


def _agree(data: bytes, *, stream: bool = False) -> bool:
    """Check the contract for one input; True when the fast path took it."""
    fast = scan_plain(data, stream=stream)
    if fast is None:
        return False
    reference = _python(data, stream=stream)
    assert not isinstance(reference, RemoteProtocolError), f"fast path took what Python rejects: {reference}"
    assert _view(fast) == _view(reference)
    return True


def test_speedups_are_built() -> None:
    # `make install` puts gcc and the Python headers there first; without them this is the one failure.
    assert parser._speedups is not None, "gateway/sip/_speedups.c was not built (no C compiler?)"
    assert use_speedups(True)


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_corpus_agrees(index: int) -> None:
    data = CORPUS[index]
    _agree(data)
    for cut in range(len(data)):
        _agree(data[:cut])


# What real calls carry: every one of these must take the fast path.
COMMON = [
    INVITE,
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-3121-1-0\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=3121SIPpTag001\r\n"
    b"To: <sip:1001@127.0.0.1:5060>;tag=a8f3\r\n"
    b"Call-ID: 1-3121@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:127.0.0.1:5062;transport=UDP>\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKabc\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b'From: "Bob" <sips:bob@example.com>;tag=x1\r\nTo: sip:alice@example.com;tag=9\r\n'
    b"Call-ID: abc\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
    b"ACK sip:1001@127.0.0.1:5062;transport=UDP SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-3121-1-5\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=3121SIPpTag001\r\nTo: <sip:1001@127.0.0.1:5060>;tag=a8f3\r\n"
    b"Call-ID: 1-3121@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bKnashds7\r\n"
    b"f: <sip:bob@example.com>;tag=456248\r\nt: <sip:bob@example.com>\r\ni: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\nm: <sip:bob@192.0.2.4>;expires=7200\r\nl: 0\r\n\r\n",
    b"OPTIONS sip:gw.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:ping@198.51.100.7>;tag=1\r\nTo: <sip:gw.example.net>\r\nCall-ID: ping-1\r\n"
    b"CSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\n\r\n",
]


def test_a_fresh_process_takes_the_fast_path_from_its_first_message() -> None:
    # The header names of RFC 3261 and friends are known before any message arrives.
    code = "from bench.parse_bench import INVITE; from gateway.sip.parser import scan_plain; " \
           "raise SystemExit(scan_plain(INVITE) is None)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


@pytest.mark.parametrize("index", range(len(COMMON)))
def test_common_messages_take_the_fast_path(index: int) -> None:
    assert _agree(COMMON[index])
    assert _agree(COMMON[index], stream=b"Content-Length" in COMMON[index] or b"\r\nl:" in COMMON[index])


def test_record_route_list_is_split_like_python() -> None:
    message = scan_plain(COMMON[2])
    assert message is not None
    assert message.get_all("Record-Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


# Each is one step outside the plain forms; the fast path leaves them to Python (which may accept them).
DECLINED = {
    "folded header": INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards:\r\n 70"),
    "non-ASCII display name": INVITE.replace(b"Alice Example", "Alíce".encode()),
    "bare LF": INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n"),
    "lone CR": INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r"),
    "two Content-Length": INVITE.replace(b"Content-Length: 368", b"Content-Length: 368\r\nl: 368"),
    "Via with received": INVITE.replace(b";rport\r\n", b";rport;received=192.0.2.1\r\n"),
    "Via list on one line": INVITE.replace(b";rport\r\n", b";rport, SIP/2.0/UDP 192.0.2.9\r\n"),
    "port over 65535": INVITE.replace(b"203.0.113.10:5060;branch", b"203.0.113.10:65536;branch"),
    "From with another parameter": INVITE.replace(b";tag=8f3a1c2b", b";tag=8f3a1c2b;x=1"),
    "CSeq of another method": INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
    "CSeq 2**31": INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 2147483648 INVITE"),
    "Max-Forwards 256": INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"),
    "body shorter than Content-Length": INVITE.replace(b"Content-Length: 368", b"Content-Length: 9999"),
    "tel Request-URI": INVITE.replace(b"sip:+4930123456@gw.example.net;user=phone SIP", b"tel:+4930123456 SIP"),
    "SIP/3.0": INVITE.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1),
    "leading CRLF": b"\r\n" + INVITE,
    "empty Call-ID": INVITE.replace(b"Call-ID: 9b7c4d2e-8a1f-4c3b-9d6e-1f2a3b4c5d6e@203.0.113.10", b"Call-ID: "),
    "no To": INVITE.replace(b"To: <sip:+4930123456@gw.example.net;user=phone>\r\n", b""),
    "a name never seen": INVITE.replace(b"User-Agent:", b"X-Never-Seen-Before-1:"),
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_unusual_forms_are_declined(name: str) -> None:
    assert scan_plain(DECLINED[name]) is None


def test_a_new_header_name_takes_the_fast_path_once_python_has_seen_it() -> None:
    data = INVITE.replace(b"User-Agent:", b"X-Seen-Once:")
    assert scan_plain(data) is None
    _python(data)
    assert _agree(data)


def test_stream_without_content_length_is_declined() -> None:
    data = COMMON[5]  # no Content-Length: fine in a datagram, a framing error on a stream
    assert _agree(data)
    assert scan_plain(data, stream=True) is None


def test_stream_parser_gives_the_same_messages_either_way() -> None:
    stream_bytes = b"".join(COMMON[1:5])  # framed exactly by their Content-Length
    results = []
    for enabled in (True, False):
        use_speedups(enabled)
        stream = StreamParser()
        stream.feed(stream_bytes)
        messages = []
        while (message := stream.next_message()) is not None:
            messages.append(_view(message))
        results.append(messages)
    assert len(results[0]) == 4
    assert results[0] == results[1]


@FUZZ
@given(mutated())
def test_mutated_corpus_agrees(data: bytes) -> None:
    _agree(data)


_NAMES = [b"Via", b"v", b"VIA", b"From", b"f", b"To", b"t", b"Call-ID", b"i", b"CSeq", b"cseq",
          b"Content-Length", b"l", b"Max-Forwards", b"Contact", b"m", b"Route", b"Record-Route",
          b"Allow", b"X-Seen-Once"]
_VALUES = st.sampled_from([
    b"SIP/2.0/UDP h:5060;branch=z9hG4bK1", b"SIP/2.0/udp h;rport;branch=b", b"SIP/2.0/TCP h:65535;branch=b;rport",
    b"SIP/2.0/UDP h:099999;branch=b", b"SIP/2.0/UDP [::1]:5060;branch=b", b"SIP/2.0/UDP h:5060;branch=",
    b"<sip:a@b>;tag=1", b'"A \\"q\\"" <sip:a@b>;tag=1', b"sip:a@b;tag=x=y", b"A B <sip:a@b>", b"<sip:a@b>;tag=",
    b"<sip:a@b>;Tag=1", b"<sips:a@b:5061;transport=tls>", b"x", b"", b"  spaced  ", b"1 INVITE", b"1\tINVITE",
    b"01 INVITE", b"4294967296 INVITE", b"1 INVITE x", b"0", b"368", b"70", b"255", b"00070", b"-1",
    b"<sip:p1;lr>, <sip:p2;lr>", b"<sip:a@b>,", b'"x,y" <sip:a@b>', b"abc\xc3\xa9", b"a\x00b", b"a;b",
])


@st.composite
def assembled(draw: st.DrawFn) -> bytes:
    """A message put together from header forms on both sides of every plain-form boundary."""
    start = draw(st.sampled_from([
        b"INVITE sip:a@b SIP/2.0", b"BYE sip:a@b:5060;lr SIP/2.0", b"SIP/2.0 200 OK", b"SIP/2.0 999 Odd",
        b"INVITE sip:a@b-:1 SIP/2.0", b"INVITE sip:a@b:12345 SIP/2.0", b"INVITE sips:+1@h;user=phone SIP/2.0",
        b"SIP/2.0 200", b"INVITE  sip:a@b SIP/2.0", b"invite sip:a@b SIP/2.0",
    ]))
    lines = [b"Via: SIP/2.0/UDP h;branch=z9hG4bK1", b"From: <sip:a@b>;tag=1", b"To: <sip:a@b>",
             b"Call-ID: c1", b"CSeq: 1 " + (start.split(b" ")[0] if not start.startswith(b"SIP/") else b"INVITE")]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(_NAMES))
        separator = draw(st.sampled_from([b": ", b":", b" : ", b":\t"]))
        line = name + separator + draw(_VALUES)
        if draw(st.booleans()):
            lines[draw(st.integers(0, len(lines) - 1))] = line
        else:
            lines.insert(draw(st.integers(0, len(lines))), line)
    body = draw(st.sampled_from([b"", b"v=0\r\n", b"x" * 10]))
    return b"\r\n".join([start, *lines]) + b"\r\n\r\n" + body


@FUZZ
@given(assembled(), st.booleans())
def test_assembled_messages_agree(data: bytes, stream: bool) -> None:
    _python(data)  # lets Python learn names first, as a running gateway would have
    _agree(data, stream=stream)


def test_parse_message_uses_the_fast_path() -> None:
    fast = parse_message(INVITE)
    use_speedups(False)
    slow = parse_message(INVITE)
    assert _view(fast) == _view(slow)
