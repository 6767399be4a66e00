"""What routing reads of an INVITE: the From/To fast path agrees with the full name-addr parser, and
odd From/To/P-Asserted-Identity values never fail the call."""

from __future__ import annotations

import pytest

from gateway.b2bua.route_request import display_and_uri, read_route_request
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request

SOURCE = ("udp", "10.0.0.1", 5060)


@pytest.mark.parametrize("value", [
    '"Alice" <sip:alice@10.0.0.1>;tag=a1',
    "<sip:+4930123@trunk.example;user=phone>;tag=x",
    '"" <sip:anonymous@anonymous.invalid>;tag=1',
    '"a>b" <sip:x@h>',
    '"a<b" <sip:x@h>',  # a < inside the quotes: the full parser decides
    '"Doe \\"JD\\" John" <sip:jd@h>',  # escapes: the full parser decides
    "Bob Smith <sip:bob@h>",
    "sip:carol@h;tag=z",
    "<tel:+4930123>",
])
def test_fast_path_reads_what_the_full_parser_reads(value: str) -> None:
    full = parse_name_addr(value)
    assert display_and_uri(value) == (full.display, full.uri)


def _invite(from_: str, to: str, uri: str = "sip:2000@gw", extra: list[tuple[str, str]] | None = None) -> Request:
    return Request("INVITE", uri, [("From", from_), ("To", to), ("Call-ID", "c1"), ("CSeq", "1 INVITE"),
                                   *(extra or [])])


@pytest.mark.parametrize(("from_", "to", "expected"), [
    ('"Alice" <sip:alice@h>;tag=1', "<sip:2000@gw>", ("sip:alice@h", "alice", "Alice", "2000")),
    ("<tel:+4930123;phone-context=x>;tag=1", "<tel:+4930999>", ("tel:+4930123;phone-context=x", "+4930123", None,
                                                               "+4930999")),
    ("<sips:bob@h>;tag=1", "<mailto:x@y>", ("sips:bob@h", "bob", None, None)),
    ('"Broken <sip:x@h;tag=1', "garbage <", ('"Broken <sip:x@h;tag=1', None, None, None)),
])
def test_r6_caller_and_dialled_users(from_: str, to: str, expected: tuple[object, ...]) -> None:
    request = read_route_request(_invite(from_, to), SOURCE, True, None, 1.0)
    assert (request.caller_uri, request.caller_user, request.caller_display, request.to_user) == expected
    assert request.request_user == "2000" and request.at == 1.0


def test_r6_unparseable_asserted_identity_is_none() -> None:
    request = read_route_request(
        _invite("<sip:a@h>;tag=1", "<sip:2000@gw>", extra=[("P-Asserted-Identity", "<<<")]), SOURCE, False, "1001", 2.0)
    assert (request.asserted, request.trusted, request.authenticated_user) == (None, False, "1001")


def test_t1_a_trunks_called_party_and_diversion_headers_are_read() -> None:
    extra = [("P-Called-Party-ID", "<sip:+33184880001@provider.example>"),
             ("Diversion", "<sip:0184880002@provider.example>;reason=unconditional, <sip:999@x>")]
    request = read_route_request(_invite("<sip:a@h>;tag=1", "<sip:acct@gw>", extra=extra), SOURCE, True, None, 1.0,
                                 trunk_id=7)
    assert (request.called_party_user, request.diversion_user, request.trunk_id) == ("+33184880001", "0184880002", 7)


def test_t1_an_untrusted_source_cannot_name_the_number_in_those_headers() -> None:
    extra = [("P-Called-Party-ID", "<sip:+33184880001@x>"), ("Diversion", "<sip:+33184880002@x>")]
    request = read_route_request(_invite("<sip:a@h>;tag=1", "<sip:2000@gw>", extra=extra), SOURCE, False, "1001", 1.0)
    assert (request.called_party_user, request.diversion_user) == (None, None)
