"""Parser tests, table-driven over tests/sip/data/corpus: each case whole, byte by byte through
StreamParser, and with trailing data (junk after a datagram, several messages on one stream)."""

from __future__ import annotations

import pytest

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Message, Request, Response
from gateway.sip.parser import MAX_DATAGRAM, is_keepalive, parse_message
from gateway.sip.stream import StreamParser
from tests.sip.data import CorpusCase, load_corpus

CORPUS = load_corpus()
VALID = [case for case in CORPUS if case.expect is None]
INVALID = [case for case in CORPUS if case.expect is not None]


def _ids(cases: list[CorpusCase]) -> list[str]:
    return [case.name for case in cases]


def _summary(message: Message) -> tuple[object, ...]:
    start = (message.method, message.uri) if isinstance(message, Request) else (message.status, message.reason)
    return start, tuple(message.headers), message.body


def _framed_exactly(case: CorpusCase) -> bool:
    """True when Content-Length covers exactly the bytes after the blank line (usable on a stream)."""
    message = parse_message(case.data)
    length = message.get("Content-Length")
    body_start = case.data.index(b"\r\n\r\n") + 4
    return length is not None and int(length) == len(case.data) - body_start


STREAMABLE = [case for case in VALID if _framed_exactly(case)]


def test_corpus_is_big_enough() -> None:
    assert len(VALID) >= 25 and len(INVALID) >= 25


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_parses_whole(case: CorpusCase) -> None:
    message = parse_message(case.data)
    # the typed views the transaction layer reads never raise on a parsed message
    assert message.call_id and message.top_via.transport
    assert message.cseq[0] >= 0
    assert message.from_.uri and message.to.uri
    if isinstance(message, Request):
        assert message.cseq[1] == message.method


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID))
def test_invalid_message_is_rejected_with_its_status(case: CorpusCase) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(case.data)
    assert caught.value.status_hint == case.expect


@pytest.mark.parametrize("case", STREAMABLE, ids=_ids(STREAMABLE))
def test_valid_message_fed_byte_by_byte_to_a_stream(case: CorpusCase) -> None:
    stream = StreamParser()
    got = []
    for index in range(len(case.data)):
        stream.feed(case.data[index : index + 1])
        message = stream.next_message()
        if message is not None:
            got.append(message)
    assert [_summary(m) for m in got] == [_summary(parse_message(case.data))]
    assert stream.buffered == 0


@pytest.mark.parametrize("case", STREAMABLE, ids=_ids(STREAMABLE))
def test_several_messages_and_keepalives_in_one_stream(case: CorpusCase) -> None:
    blob = case.data + b"\r\n\r\n" + case.data + b"\r\n" + case.data
    stream = StreamParser()
    got = []
    for offset in range(0, len(blob), 7):
        stream.feed(blob[offset : offset + 7])
        while (message := stream.next_message()) is not None:
            got.append(message)
    assert [_summary(m) for m in got] == [_summary(parse_message(case.data))] * 3
    assert stream.pop_keepalive_pongs() == 1
    assert stream.pop_keepalive_pongs() == 0


@pytest.mark.parametrize("case", STREAMABLE, ids=_ids(STREAMABLE))
def test_junk_after_the_body_of_a_datagram_is_ignored(case: CorpusCase) -> None:
    assert _summary(parse_message(case.data + b"garbage\r\n\r\nmore")) == _summary(parse_message(case.data))


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID))
def test_invalid_message_on_a_stream_fails_the_same_or_waits(case: CorpusCase) -> None:
    stream = StreamParser()
    stream.feed(case.data)
    try:
        message = stream.next_message()
    except RemoteProtocolError as error:
        assert error.status_hint in (case.expect, 400)  # 400 when the stream framing itself fails
    else:
        assert message is None and stream.buffered > 0  # waiting for bytes a datagram never had


# -- specific behaviours ----------------------------------------------------------------------

BASE = (
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-base\r\n"
    b"From: <sip:a@example.com>;tag=from1\r\n"
    b"To: <sip:user@example.com>\r\n"
    b"Call-ID: base@example.com\r\n"
    b"CSeq: 7 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
)


def _with(extra: bytes = b"", *, body: bytes = b"", length: bool = True) -> bytes:
    head = BASE + extra + (b"Content-Length: %d\r\n" % len(body) if length else b"")
    return head + b"\r\n" + body


def _by_name(name: str) -> Message:
    return parse_message(next(case for case in CORPUS if case.name == name).data)


def test_compact_and_case_insensitive_names_are_canonical() -> None:
    message = _by_name("valid_tortuous")
    names = [name for name, _ in message.headers]
    assert {"To", "From", "Max-Forwards", "Call-ID", "Content-Length", "CSeq", "Via", "Subject",
            "Contact", "Route"} <= set(names)
    assert "Newfangledheader" in names
    assert message.max_forwards == 68


def test_folded_lines_are_joined_with_one_space() -> None:
    message = _by_name("valid_tortuous")
    assert message.cseq == (9, "INVITE")
    assert message.get("Newfangledheader") == "newfangled value continued newfangled value"
    assert message.from_.tag == "98asjd8"
    assert message.to.tag == "1918181833n"


def test_several_vias_on_one_line_become_entries_top_first() -> None:
    message = _by_name("valid_several_vias_one_line")
    assert [via.host for via in message.vias] == ["proxy2.example.com", "proxy1.example.com", "192.0.2.4"]
    assert message.top_via.branch == "z9hG4bK721e4.1" and message.top_via.port == 5060
    assert message.get_all("Record-Route") == ["<sip:proxy2.example.com;lr>", "<sip:proxy1.example.com;lr>"]


def test_tortuous_vias_with_lws_split_and_parse() -> None:
    vias = _by_name("valid_tortuous").vias
    assert [(via.transport, via.host, via.branch) for via in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]


def test_quoted_display_names_with_commas_are_not_split() -> None:
    message = _by_name("valid_quoted_comma_contact")
    contacts = message.get_all("Contact")
    assert len(contacts) == 2
    assert message.from_.display == "Smith, John"
    assert contacts[1].startswith('"Mobile, \\"cell\\""')


def test_contact_star_is_kept() -> None:
    assert _by_name("valid_contact_star").get_all("Contact") == ["*"]


def test_ipv6_everywhere() -> None:
    message = _by_name("valid_ipv6")
    assert isinstance(message, Request)
    assert message.parsed_uri.host == "2001:db8::10" and message.parsed_uri.port == 5070
    via = message.top_via
    assert (via.host, via.port, via.params["received"], via.params["rport"]) == (
        "2001:db8::9:1", 6050, "2001:db8::9:255", "6050")


def test_escaped_request_uri_user_is_unescaped() -> None:
    message = _by_name("valid_escaped_uri")
    assert isinstance(message, Request)
    assert message.parsed_uri.user == "sips:user@example.com"
    assert message.parsed_uri.host == "example.net"


def test_tel_request_uri() -> None:
    message = _by_name("valid_tel_uri")
    assert isinstance(message, Request)
    assert (message.parsed_uri.scheme, message.parsed_uri.user) == ("tel", "+1-201-555-0123")


def test_body_is_cut_to_content_length() -> None:
    message = _by_name("valid_trailing_junk_after_body")
    assert message.body == b"Signal=5\r\nDuration=160\r\n"


def test_datagram_without_content_length_takes_the_rest() -> None:
    assert _by_name("valid_datagram_no_content_length").body == b"Watson, come here.\r\n"


def test_second_request_in_a_datagram_is_ignored() -> None:
    message = _by_name("valid_double_request")
    assert isinstance(message, Request) and message.method == "REGISTER" and message.body == b""


def test_response_fields() -> None:
    message = _by_name("valid_response_empty_reason")
    assert isinstance(message, Response) and (message.status, message.reason) == (100, "")
    ringing = _by_name("valid_response_180_compact")
    assert isinstance(ringing, Response) and ringing.to_tag == "bb" and ringing.from_tag == "aa"


def test_missing_max_forwards_is_accepted_as_none() -> None:
    assert _by_name("valid_missing_max_forwards").max_forwards is None


def test_partial_request_is_attached_when_an_answer_is_possible() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(BASE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1) + b"Content-Length: 0\r\n\r\n")
    assert caught.value.status_hint == 505
    partial = caught.value.partial
    assert partial is not None and partial.call_id == "base@example.com"
    assert partial.top_via.branch == "z9hG4bK-base"


def test_no_partial_without_the_mandatory_headers() -> None:
    data = _with().replace(b"Call-ID: base@example.com\r\n", b"")
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(data)
    assert caught.value.status_hint == 400 and caught.value.partial is None


def test_responses_never_carry_a_partial() -> None:
    data = b"SIP/3.0 200 OK\r\n" + BASE.split(b"\r\n", 1)[1] + b"\r\n"
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(data)
    assert caught.value.status_hint == 505 and caught.value.partial is None


def test_lowercase_sip_version_is_accepted() -> None:
    message = parse_message(_with().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert isinstance(message, Request)


def test_oversized_datagram_is_513() -> None:
    data = _with(body=b"x" * MAX_DATAGRAM)
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(data)
    assert caught.value.status_hint == 513 and caught.value.partial is not None


def test_bare_lf_inside_a_value_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(_with(b"Subject: a\nInjected: b\r\n"))


def test_non_ascii_digits_are_not_numbers() -> None:
    for bad in (b"CSeq: \xc2\xb9 OPTIONS", b"Max-Forwards: \xd9\xa3", b"Content-Length: \xd9\xa3"):
        name = bad.split(b":")[0]
        data = b"\r\n".join(line for line in _with().split(b"\r\n") if not line.startswith(name + b":"))
        data = data.replace(b"\r\n\r\n", b"\r\n" + bad + b"\r\n\r\n", 1)
        with pytest.raises(RemoteProtocolError):
            parse_message(data)


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    data = _with(b"Subject: caf\xe9\r\n")
    assert parse_message(data).to_bytes() == data


def test_to_bytes_round_trip_and_fixes_content_length() -> None:
    message = parse_message(_with(body=b"hello"))
    assert parse_message(message.to_bytes()).body == b"hello"
    message.body = b"longer body"
    assert b"Content-Length: 11\r\n\r\nlonger body" in message.to_bytes()
    assert message.to_bytes().count(b"Content-Length") == 1


def test_keepalive_datagram_is_recognised_and_not_a_message() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and not is_keepalive(b"")
    with pytest.raises(RemoteProtocolError):
        parse_message(b"\r\n\r\n")


# -- stream specifics -----------------------------------------------------------------------


def test_stream_without_content_length_is_400_and_breaks_the_stream() -> None:
    stream = StreamParser()
    stream.feed(_with(length=False))
    with pytest.raises(RemoteProtocolError) as caught:
        stream.next_message()
    assert caught.value.status_hint == 400 and stream.broken
    with pytest.raises(RemoteProtocolError):
        stream.next_message()


def test_stream_header_block_limit_is_513() -> None:
    stream = StreamParser(max_header_bytes=1024)
    stream.feed(b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"x" * 2000)
    with pytest.raises(RemoteProtocolError) as caught:
        stream.next_message()
    assert caught.value.status_hint == 513


def test_stream_body_limit_is_513() -> None:
    stream = StreamParser(max_body_bytes=100)
    stream.feed(_with(body=b"y" * 101))
    with pytest.raises(RemoteProtocolError) as caught:
        stream.next_message()
    assert caught.value.status_hint == 513


def test_stream_goes_on_after_a_well_framed_bad_message() -> None:
    bad = _with().replace(b"CSeq: 7 OPTIONS", b"CSeq: 7 INVITE")
    stream = StreamParser()
    stream.feed(bad + _with(body=b"ok"))
    with pytest.raises(RemoteProtocolError) as caught:
        stream.next_message()
    assert caught.value.partial is not None and not stream.broken
    message = stream.next_message()
    assert message is not None and message.body == b"ok"


def test_stream_ping_split_across_feeds_gets_one_pong() -> None:
    stream = StreamParser()
    for chunk in (b"\r", b"\n\r", b"\n"):
        stream.feed(chunk)
        assert stream.next_message() is None
    assert stream.pop_keepalive_pongs() == 1
    stream.feed(b"\r\n")  # a lone CRLF (a pong from the other side) needs no answer
    stream.feed(_with())
    assert stream.next_message() is not None
    assert stream.pop_keepalive_pongs() == 0
