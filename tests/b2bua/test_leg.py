"""Leg helpers: tag stripping, URI targets, in-dialog requests; the Request-URI user fast path."""

from __future__ import annotations

import pytest

from gateway.b2bua.leg import Leg, request_user, strip_tag, uri_target
from gateway.sip.uri import parse_uri


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Alice" <sip:alice@example.com>;tag=abc', '"Alice" <sip:alice@example.com>'),
        ("<sip:alice@example.com>;TAG=abc;x=1", "<sip:alice@example.com>;x=1"),
        ("<sip:alice@example.com;tag=uri-param>", "<sip:alice@example.com;tag=uri-param>"),
        ("<sip:alice@example.com>", "<sip:alice@example.com>"),
        ("sip:alice@example.com;tag=abc", "<sip:alice@example.com>"),
    ],
)
def test_strip_tag_removes_only_the_header_tag(value: str, expected: str) -> None:
    assert strip_tag(value) == expected


@pytest.mark.parametrize(
    ("uri", "transport", "expected"),
    [
        ("sip:2000@10.0.0.2:5062", "udp", ("udp", "10.0.0.2", 5062)),
        ("sip:10.0.0.2", "udp", ("udp", "10.0.0.2", 5060)),
        ("sip:10.0.0.2;transport=TCP", "udp", ("tcp", "10.0.0.2", 5060)),
        ("sip:[::1]:5070", "udp", ("udp", "::1", 5070)),
    ],
)
def test_uri_target(uri: str, transport: str, expected: tuple[str, str, int]) -> None:
    assert uri_target(uri, transport) == expected


@pytest.mark.parametrize(
    "uri",
    ["sip:2000@127.0.0.1:5060", "sip:%32000@host", "sip:+33 1;phone-context=x@host".replace(" ", ""),
     "sip:host.example", "sip:u:pw@host", "sips:bob@host", "tel:+33123456789"],
)
def test_request_user_fast_path_agrees_with_the_parser(uri: str) -> None:
    assert request_user(uri) == parse_uri(uri).user


def test_in_dialog_request_follows_the_dialog_state() -> None:
    leg = Leg(call_id="c1", local_tag="l1", local_uri="<sip:gw@10.0.0.9>", remote_uri="<sip:bob@10.0.0.2>",
              remote_target="sip:bob@10.0.0.2:5062", transport="udp", contact="<sip:gw@10.0.0.9:5060>",
              remote_tag="r1", route_set=("<sip:proxy.example;lr>",), local_cseq=4)
    bye = leg.create_request("BYE")
    assert bye.uri == "sip:bob@10.0.0.2:5062"
    assert bye.get("Route") == "<sip:proxy.example;lr>"
    assert bye.get("From") == "<sip:gw@10.0.0.9>;tag=l1" and bye.get("To") == "<sip:bob@10.0.0.2>;tag=r1"
    assert bye.cseq == (5, "BYE") and bye.get("Contact") is None
    ack = leg.create_request("ACK", cseq=3)
    assert ack.cseq == (3, "ACK") and leg.local_cseq == 5
    assert leg.next_hop() == ("udp", "proxy.example", 0)  # no port named: the transport asks DNS (RFC 3263)
    leg.peer = ("tcp", "10.0.0.2", 40000)
    assert leg.next_hop() == ("tcp", "10.0.0.2", 40000)
