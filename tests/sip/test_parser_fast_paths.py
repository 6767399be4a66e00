"""The Python parser's shortcuts give the same answers as the full grammar they skip.

These tests run with the C fast path off (tests/sip/test_parser_speedups.py holds it to the Python
parser). The hot path checks the Request-URI, the top Via and From/To with one regex each and remembers
header lines it has seen; each shortcut must accept only what the full parser accepts, with the
same fields, and a remembered line must parse as it did the first time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip import parser
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import NOT_PLAIN, _parse_via_full, parse_name_addr, parse_via, plain_name_addr_tag
from gateway.sip.message import Request
from gateway.sip.parser import parse_message, use_speedups
from gateway.sip.uri import is_plain_sip_uri, parse_uri
from tests.sip.data import load_corpus


@pytest.fixture(autouse=True)
def _python_parser_only() -> Iterator[None]:
    names = dict(parser._NAME_CACHE)  # some tests start cold; later tests expect the usual table
    use_speedups(False)
    yield
    use_speedups(True)
    parser._NAME_CACHE.update(names)


SHORTCUTS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters each grammar treats specially, so that generated values sit on the shortcuts' edges.
PIECES = ["sip:", "sips:", "SIP:", "tel:", "a", "Z", "9", "@", ":", ";", "=", ",", "<", ">", '"', "\\", " ",
          "\t", "[", "]", "%41", "%", "?", "&", "/", "tag=", ";tag=", ";TAG=", ";lr", "-", ".", "_", "~", "é",
          "\x0b", "\u00a0", "5060", "65536", "99999", "branch=", ";branch=", ";rport", "z9hG4bK"]


def _text(*templates: str) -> st.SearchStrategy[str]:
    """A template with pieces inserted, deleted or swapped at random places."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = draw(st.sampled_from(templates))
        for _ in range(draw(st.integers(0, 4))):
            at = draw(st.integers(0, len(text)))
            piece = draw(st.sampled_from(PIECES))
            action = draw(st.sampled_from(["insert", "delete", "replace"]))
            if action == "insert":
                text = text[:at] + piece + text[at:]
            elif action == "delete":
                text = text[:at] + text[at + draw(st.integers(1, 4)) :]
            else:
                text = text[:at] + piece + text[at + len(piece) :]
        return text

    return build()


def _outcome(parse: object, value: str) -> object:
    try:
        return ("ok", parse(value))  # type: ignore[operator]
    except RemoteProtocolError as error:
        return ("rejected", error.status_hint)


NAME_ADDRS = _text('"Alice Example" <sip:alice@pbx.example.org>;tag=8f3a1c2b', "<sip:+4930123456@gw.example.net;user=phone>",
                   "sip:bob@example.com;tag=77", "Bob <sips:bob@[2001:db8::1]:5061>;tag=a;x=y", "<tel:+1-201-555-0123>")


@SHORTCUTS
@given(NAME_ADDRS)
def test_plain_name_addr_tag_agrees_with_parse_name_addr(value: str) -> None:
    tag = plain_name_addr_tag(value)
    if tag is not NOT_PLAIN:
        assert parse_name_addr(value).tag == tag  # a value the shortcut takes, the full parse takes too


VIAS = _text("SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1;rport", "SIP/2.0/TCP host.example.com;rport;branch=z9hG4bKx",
             "SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK.a;received=192.0.2.9;ttl=3", 'SIP/2.0/UDP h;x="a;b"',
             "SIP / 2.0 / UDP [2001:db8::9]:6050 ;branch=z9hG4bKq")


@SHORTCUTS
@given(VIAS)
def test_parse_via_agrees_with_the_full_grammar(value: str) -> None:
    assert _outcome(parse_via, value) == _outcome(_parse_via_full, value)


URIS = _text("sip:+4930123456@gw.example.net;user=phone", "sips:alice@example.com:5061;transport=tls",
             "sip:example.com", "sip:a;b?c@host;lr;maddr=1.2.3.4", "sip:user:pw@[2001:db8::1]:5070?subject=x")


@SHORTCUTS
@given(URIS)
def test_plain_sip_uri_is_always_accepted_by_parse_uri(value: str) -> None:
    if is_plain_sip_uri(value):
        parse_uri(value)  # must not raise


@pytest.mark.parametrize("case", load_corpus(), ids=lambda case: case.name)
def test_a_remembered_header_line_parses_as_it_did_the_first_time(case: object) -> None:
    data = case.data  # type: ignore[attr-defined]
    parser._LINE_CACHE.clear()
    parser._NAME_CACHE.clear()
    cold, warm = _outcome(parse_message, data), _outcome(parse_message, data)  # type: ignore[arg-type]
    if cold[0] == "ok":
        assert warm[0] == "ok"
        assert warm[1].headers == cold[1].headers  # type: ignore[union-attr]
        assert warm[1].to_bytes() == cold[1].to_bytes()  # type: ignore[union-attr]
    else:
        assert warm == cold


def test_per_call_header_lines_are_not_remembered() -> None:
    parser._LINE_CACHE.clear()
    parse_message(next(case.data for case in load_corpus() if case.name == "valid_basic_invite"))
    remembered = {name for name, _ in parser._LINE_CACHE.values()}
    assert remembered and not remembered & {"Via", "From", "To", "Call-ID"}


def test_line_memory_is_bounded() -> None:
    base = next(case.data for case in load_corpus() if case.name == "valid_basic_invite")
    for serial in range(parser._MAX_CACHED_LINES + 10):
        parse_message(base.replace(b"\r\n\r\n", b"\r\nX-Serial: %d\r\n\r\n" % serial, 1))
    assert len(parser._LINE_CACHE) <= parser._MAX_CACHED_LINES


BASE = (
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-base\r\n"
    b"From: <sip:a@example.com>;tag=from1\r\n"
    b"To: <sip:user@example.com>\r\n"
    b"Call-ID: base@example.com\r\n"
    b"CSeq: 7 OPTIONS\r\n"
    b"Subject: hello\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_a_known_header_name_without_colon_is_still_rejected() -> None:
    parse_message(BASE)  # "Subject" is now a known name
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(BASE.replace(b"Subject: hello", b"Subject"))
    assert caught.value.status_hint == 400


def test_a_header_name_folded_onto_its_own_line_is_joined() -> None:
    # RFC 3261 §7.3.1: "From\r\n : value" reads as "From : value".
    message = parse_message(BASE.replace(b"From: <sip:a", b"From\r\n : <sip:a"))
    assert message.from_tag == "from1" and message.get("From") == "<sip:a@example.com>;tag=from1"


@pytest.mark.parametrize(
    ("from_value", "tag"),
    [
        (b'"Alice" <sip:a@example.com>;tag=t1', "t1"),
        (b"sip:a@example.com;tag=t2", "t2"),
        (b"<sip:a@example.com>;TAG=t3", "t3"),  # parameter names are case-insensitive (§7.3.1)
        (b"<sip:a@example.com>;tag=t4;x=1", "t4"),
        (b"<sip:a@example.com>;tag=a;tag=b", "b"),
        (b'"A \\"q\\"" <sip:a@example.com> ; tag = t5', "t5"),
        (b"<sip:a@example.com>", None),
    ],
)
def test_from_tag_of_every_form(from_value: bytes, tag: str | None) -> None:
    message = parse_message(BASE.replace(b"<sip:a@example.com>;tag=from1", from_value))
    assert message.from_tag == tag == message.from_.tag


def test_views_follow_a_header_changed_through_the_methods() -> None:
    message = parse_message(BASE)
    assert isinstance(message, Request) and message.from_tag == "from1" and message.call_id == "base@example.com"
    message.set("From", "<sip:b@example.com>;tag=other")
    message.set("Call-ID", "changed@example.com")
    assert message.from_tag == "other" and message.call_id == "changed@example.com"
