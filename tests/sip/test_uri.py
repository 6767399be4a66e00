"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966)."""

from __future__ import annotations

import pytest

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.uri import SipUri, parse_uri

# text, scheme, user, password, host, port, params, headers
VALID = [
    ("sip:alice@example.com", "sip", "alice", None, "example.com", None, {}, {}),
    ("SIP:Alice@EXAMPLE.COM", "sip", "Alice", None, "example.com", None, {}, {}),
    ("sips:alice:secret@atlanta.example.com:5061", "sips", "alice", "secret", "atlanta.example.com", 5061, {}, {}),
    ("sip:proxy.example.com;lr", "sip", None, None, "proxy.example.com", None, {"lr": None}, {}),
    ("sip:a@b;Transport=TCP;USER=phone", "sip", "a", None, "b", None, {"transport": "TCP", "user": "phone"}, {}),
    ("sip:a@b?subject=x&priority=urgent", "sip", "a", None, "b", None, {}, {"subject": "x", "priority": "urgent"}),
    ("sip:%61lice%20smith@example.com", "sip", "alice smith", None, "example.com", None, {}, {}),
    ("sip:user;par=u%40example.net@example.com", "sip", "user;par=u@example.net", None, "example.com", None, {}, {}),
    ("sip:[2001:DB8::1]:5060", "sip", None, None, "2001:db8::1", 5060, {}, {}),
    ("sip:bob@[::1];maddr=[::2]", "sip", "bob", None, "::1", None, {"maddr": "[::2]"}, {}),
    ("tel:+1-201-555-0123", "tel", "+1-201-555-0123", None, "", None, {}, {}),
    ("tel:7042;phone-context=example.com", "tel", "7042", None, "", None, {"phone-context": "example.com"}, {}),
    ("sip:null-%00-null@example.com", "sip", "null-\x00-null", None, "example.com", None, {}, {}),
    ("sip:%C3%A9t%C3%A9@example.com", "sip", "\u00e9t\u00e9", None, "example.com", None, {}, {}),
]


@pytest.mark.parametrize("case", VALID, ids=[case[0] for case in VALID])
def test_parse_valid(case: tuple) -> None:
    text, scheme, user, password, host, port, params, headers = case
    uri = parse_uri(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params, uri.headers) == (
        scheme, user, password, host, port, params, headers)


@pytest.mark.parametrize("case", VALID, ids=[case[0] for case in VALID])
def test_to_str_parses_back_to_the_same_uri(case: tuple) -> None:
    uri = parse_uri(case[0])
    assert parse_uri(uri.to_str()) == uri


def test_to_str_escapes_what_must_be_escaped() -> None:
    uri = SipUri("sip", "alice smith@home", "example.com", 5070, params={"lr": None, "transport": "tcp"})
    assert uri.to_str() == "sip:alice%20smith%40home@example.com:5070;lr;transport=tcp"
    assert SipUri("sip", None, "2001:db8::1", 5060).to_str() == "sip:[2001:db8::1]:5060"
    assert SipUri("tel", "+1 555", "").to_str() == "tel:+1%20555"


def test_to_str_keeps_user_unreserved_characters() -> None:
    text = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    uri = parse_uri(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.to_str() == text


@pytest.mark.parametrize("text", ["http://example.com/", "mailto:a@example.com", "im:alice@example.com"])
def test_unsupported_scheme_is_416(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_uri(text)
    assert caught.value.status_hint == 416


@pytest.mark.parametrize("text", [
    "", "sip:", "example.com", "sip:@example.com", "sip:a@", "sip:a@b:", "sip:a@b:99999", "sip:a@b:5x",
    "sip:a@[2001:db8::1", "sip:a@[example.com]", "sip:a b@c", "sip:%4@example.com", "sip:%zz@example.com",
    "sip:a@b;=x", "sip:a@b;x=", "sip:a@b?subject", "tel:", "sip:a@exa mple.com", "sip:<a@b>", "1sip:a@b",
])
def test_malformed_is_400(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_uri(text)
    assert caught.value.status_hint == 400
