"""Via (RFC 3261 §20.42), name-addr / addr-spec (§20.10, §25.1) and comma splitting."""

from __future__ import annotations

import pytest

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import NameAddr, Via, parse_name_addr, parse_via, split_comma_values

# value, transport, host, port, params
VIAS = [
    ("SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds", "UDP", "pc33.atlanta.example.com", None,
     {"branch": "z9hG4bK776asdhds"}),
    ("SIP/2.0/tcp 192.0.2.1:5060;rport;branch=z9hG4bKx", "TCP", "192.0.2.1", 5060,
     {"rport": None, "branch": "z9hG4bKx"}),
    ("SIP/2.0/UDP 192.0.2.1:5060;received=198.51.100.7;rport=40312;branch=z9hG4bKy", "UDP", "192.0.2.1", 5060,
     {"received": "198.51.100.7", "rport": "40312", "branch": "z9hG4bKy"}),
    ("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKv6;received=2001:db8::9:255", "UDP", "2001:db8::9:1", 6050,
     {"branch": "z9hG4bKv6", "received": "2001:db8::9:255"}),
    ("SIP / 2.0 / TLS  host.example.com : 5061 ; Branch = z9hG4bKlws ; maddr=224.2.0.1", "TLS",
     "host.example.com", 5061, {"branch": "z9hG4bKlws", "maddr": "224.2.0.1"}),
    ('SIP/2.0/UDP h.example.com;branch=z9hG4bKq;comment="a;b"', "UDP", "h.example.com", None,
     {"branch": "z9hG4bKq", "comment": '"a;b"'}),
    ("SIP/2.0/SCTP t2.example.com", "SCTP", "t2.example.com", None, {}),
]


@pytest.mark.parametrize("case", VIAS, ids=[case[0] for case in VIAS])
def test_parse_via(case: tuple) -> None:
    value, transport, host, port, params = case
    via = parse_via(value)
    assert (via.transport, via.host, via.port, via.params) == (transport, host, port, params)
    assert via.branch == params.get("branch")


@pytest.mark.parametrize("case", VIAS, ids=[case[0] for case in VIAS])
def test_via_to_str_parses_back(case: tuple) -> None:
    via = parse_via(case[0])
    assert parse_via(via.to_str()) == via


def test_via_to_str_form() -> None:
    via = Via("UDP", "2001:db8::1", 5060, {"branch": "z9hG4bK1", "rport": None})
    assert via.to_str() == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport"


@pytest.mark.parametrize("value", [
    "", "192.0.2.1;branch=x", "SIP/2.0 192.0.2.1", "SIP/2.0/UDP", "SIP/2.0/UDP 2001:db8::1;branch=x",
    "SIP/2.0/UDP host:99999", "SIP/2.0/UDP host;branch=", "SIP/2.0/UDP host;;branch=x", "HTTP/1.1/TCP host",
    "SIP/2.0/UDP [host]:5060", 'SIP/2.0/UDP host;x="unterminated', "SIP/2.0/UDP a b",
])
def test_malformed_via_is_400(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_via(value)
    assert caught.value.status_hint == 400


# value, display, uri, params
NAME_ADDRS = [
    ("Bob <sip:bob@biloxi.example.com>", "Bob", "sip:bob@biloxi.example.com", {}),
    ('"Alice, \\"the\\" one" <sip:alice@example.com>;tag=1928301774', 'Alice, "the" one',
     "sip:alice@example.com", {"tag": "1928301774"}),
    ("<sip:a@example.com;transport=tcp>;expires=60;q=0.5", None, "sip:a@example.com;transport=tcp",
     {"expires": "60", "q": "0.5"}),
    # RFC 3261 §20.10: without <>, the parameters belong to the header, not the URI
    ("sip:caller@example.net;tag=93942939o2", None, "sip:caller@example.net", {"tag": "93942939o2"}),
    ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com", {"tag": "323"}),
    ('"" <sip:anon@example.com>', "", "sip:anon@example.com", {}),
    ("  J Rosenberg   <sip:jdrosen@example.com> ; Tag = 98asjd8", "J Rosenberg", "sip:jdrosen@example.com",
     {"tag": "98asjd8"}),
    ("<tel:+1-201-555-0123>", None, "tel:+1-201-555-0123", {}),
    ("*", None, "*", {}),
    ('"\u00e9t\u00e9" <sip:e@example.com>;tag=x;lr', "\u00e9t\u00e9", "sip:e@example.com", {"tag": "x", "lr": None}),
]


@pytest.mark.parametrize("case", NAME_ADDRS, ids=[case[0] for case in NAME_ADDRS])
def test_parse_name_addr(case: tuple) -> None:
    value, display, uri, params = case
    parsed = parse_name_addr(value)
    assert (parsed.display, parsed.uri, parsed.params) == (display, uri, params)
    assert parsed.tag == params.get("tag")


@pytest.mark.parametrize("case", NAME_ADDRS, ids=[case[0] for case in NAME_ADDRS])
def test_name_addr_to_str_parses_back(case: tuple) -> None:
    parsed = parse_name_addr(case[0])
    again = parse_name_addr(parsed.to_str())
    assert (again.display or None, again.uri, again.params) == (parsed.display or None, parsed.uri, parsed.params)


def test_name_addr_to_str_escapes_the_display_name() -> None:
    assert NameAddr('say "hi" \\', "sip:a@b", {"tag": "1"}).to_str() == '"say \\"hi\\" \\\\" <sip:a@b>;tag=1'


@pytest.mark.parametrize("value", [
    "", '"unterminated <sip:a@b>', "Bell, Alexander <sip:a@b>", "<sip:a@b", "<sip:a@b> junk",
    '"Watson" sip:t@example.org', "sip:a@b>", "no-scheme", "<sip:a@b>;tag=", "<sip:a@b>;;tag=1",
])
def test_malformed_name_addr_is_400(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_name_addr(value)
    assert caught.value.status_hint == 400


@pytest.mark.parametrize(("value", "parts"), [
    ("a, b,c", ["a", "b", "c"]),
    ('"Smith, John" <sip:j@x>, <sip:k@y>', ['"Smith, John" <sip:j@x>', "<sip:k@y>"]),
    ('"a \\" , b" <sip:c@d>, <sip:e@f;x=1,2>', ['"a \\" , b" <sip:c@d>', "<sip:e@f;x=1,2>"]),
    ("single", ["single"]),
    (" , ,x, ", ["x"]),
    ("", []),
])
def test_split_comma_values(value: str, parts: list[str]) -> None:
    assert split_comma_values(value) == parts
