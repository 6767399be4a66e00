"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966).

`parse_uri` unescapes the user part and the password (RFC 3261 §19.1.4 compares them unescaped)
and lower-cases the scheme, the host and parameter names, which are case-insensitive. Parameter
and header values are kept as written so that `to_str` gives back what was received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.sip.errors import RemoteProtocolError

SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})

# RFC 3261 §25.1: unreserved = alphanum / mark; user-unreserved and the password's extra characters.
_UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
_USER_SAFE = frozenset(_UNRESERVED + "&=+$,;?/")
_PASSWORD_SAFE = frozenset(_UNRESERVED + "&=+$,")
# RFC 3966 §3: a tel number holds digits, hex digits, visual separators and '+', '*', '#'.
_TEL_SAFE = frozenset(_UNRESERVED + "+#")

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_.])?\Z")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+\Z")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]/:&$]+\Z")
_FORBIDDEN_RE = re.compile(r'[\s<>"]')
_HEX = frozenset("0123456789abcdefABCDEF")
# The usual sip:/sips: URI in one C-level match: user without escapes or password, host name or IPv4,
# port below 10000, token parameters, no headers. Everything it matches `parse_uri` accepts.
PLAIN_SIP_URI_PATTERN = (
    r"[sS][iI][pP][sS]?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]+@)?"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_.])?(?::[0-9]{1,4})?"
    r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~\[\]/:&$]+)?)*"
)
_PLAIN_SIP_URI_RE = re.compile(PLAIN_SIP_URI_PATTERN)


@dataclass(slots=True)
class SipUri:
    """A parsed URI; `to_str` serialises it back (escaping the user part again)."""

    scheme: str  # "sip" | "sips" | "tel" (lower case)
    user: str | None  # unescaped; for tel: the number
    host: str  # IPv6 without brackets; "" for tel
    port: int | None = None
    password: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)  # keys lower case
    headers: dict[str, str] = field(default_factory=dict)

    def to_str(self) -> str:
        """The URI as text, user part and password %-escaped where RFC 3261 §25.1 requires."""
        if self.scheme == "tel":
            text = f"tel:{_escape(self.user or '', _TEL_SAFE)}"
        else:
            userinfo = ""
            if self.user is not None:
                userinfo = _escape(self.user, _USER_SAFE)
                if self.password is not None:
                    userinfo = f"{userinfo}:{_escape(self.password, _PASSWORD_SAFE)}"
                userinfo += "@"
            host = f"[{self.host}]" if ":" in self.host else self.host
            port = f":{self.port}" if self.port is not None else ""
            text = f"{self.scheme}:{userinfo}{host}{port}"
        for name, value in self.params.items():
            text = f"{text};{name}" if value is None else f"{text};{name}={value}"
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers.items())
        return text

    def __str__(self) -> str:
        return self.to_str()


def is_plain_sip_uri(text: str) -> bool:
    """True when `text` is a URI of the common form that `parse_uri` surely accepts (a cheap check)."""
    return _PLAIN_SIP_URI_RE.fullmatch(text) is not None


def parse_uri(text: str) -> SipUri:
    """Parse a URI; raises RemoteProtocolError(416) for an unsupported scheme, 400 when malformed."""
    scheme, colon, rest = text.strip().partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise RemoteProtocolError(f"not a URI: {text[:80]!r}", 400)
    scheme = scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise RemoteProtocolError(f"unsupported URI scheme {scheme!r}", 416)
    if not rest or _FORBIDDEN_RE.search(rest):
        raise RemoteProtocolError(f"malformed URI {text[:80]!r}", 400)
    if scheme == "tel":
        return _parse_tel(rest)
    return _parse_sip(scheme, rest)


def _parse_tel(rest: str) -> SipUri:
    number, _, params = rest.partition(";")
    if not number:
        raise RemoteProtocolError("tel URI without a number", 400)
    return SipUri("tel", _unescape(number), "", params=_parse_params(params))


def _parse_sip(scheme: str, rest: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    # '@' is legal only as the userinfo delimiter, while the user part may hold '?' and ';'
    # (RFC 3261 §25.1 user-unreserved): split userinfo off first.
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_text, colon, password_text = userinfo.partition(":")
        if not user_text:
            raise RemoteProtocolError("empty user part in URI", 400)
        user = _unescape(user_text)
        if colon:
            password = _unescape(password_text)
    rest, question, header_text = rest.partition("?")
    hostport, _, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport)
    headers = _parse_uri_headers(header_text) if question else {}
    return SipUri(scheme, user, host, port, password, _parse_params(param_text), headers)


def _parse_hostport(hostport: str) -> tuple[str, int | None]:
    """Host (IPv6 without brackets, lower case) and port of ``host[:port]``."""
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end] if end > 0 else ""
        if end < 0 or not _IPV6_RE.match(host) or ":" not in host:
            raise RemoteProtocolError(f"malformed IPv6 reference {hostport[:60]!r}", 400)
        port_text = hostport[end + 1 :]
        if port_text and not port_text.startswith(":"):
            raise RemoteProtocolError(f"malformed host {hostport[:60]!r}", 400)
        port_text = port_text[1:]
        has_port = bool(hostport[end + 1 :])
    else:
        host, has_colon, port_text = hostport.partition(":")
        has_port = bool(has_colon)
        if not _HOSTNAME_RE.match(host):
            raise RemoteProtocolError(f"malformed host {hostport[:60]!r}", 400)
    if not has_port:
        return host.lower(), None
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5 or int(port_text) > 65535:
        raise RemoteProtocolError(f"malformed port in {hostport[:60]!r}", 400)
    return host.lower(), int(port_text)


def _parse_params(text: str) -> dict[str, str | None]:
    """``name=value;flag`` (after the first ';') to a dict with lower-case names."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    for item in text.split(";"):
        name, equals, value = item.partition("=")
        lower = _KNOWN_PARAMS.get(name)
        if lower is None:
            if not _TOKEN_RE.match(name):
                raise RemoteProtocolError(f"malformed URI parameter {item[:60]!r}", 400)
            lower = name.lower()
        if equals and not value:
            raise RemoteProtocolError(f"malformed URI parameter {item[:60]!r}", 400)
        params[lower] = value if equals else None
    return params


# Parameter names of nearly every URI; skipping their validation is a measured win.
_KNOWN_PARAMS = {name: name for name in ("transport", "user", "lr", "maddr", "ttl", "method", "ob", "gr")}


def _parse_uri_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split("&"):
        name, equals, value = item.partition("=")
        if not name or not equals:
            raise RemoteProtocolError(f"malformed URI header {item[:60]!r}", 400)
        headers[name] = value
    return headers


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    first, *escaped = text.split("%")
    octets = bytearray(first.encode("utf-8", "surrogateescape"))
    for part in escaped:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise RemoteProtocolError(f"bad %-escape in {text[:60]!r}", 400)
        octets.append(int(part[:2], 16))
        octets += part[2:].encode("utf-8", "surrogateescape")
    # Escapes are octets (RFC 3261 §25.1): UTF-8 sequences become characters, other octets
    # survive as surrogates so that to_str gives them back unchanged.
    return octets.decode("utf-8", "surrogateescape")


def _escape(text: str, safe: frozenset[str]) -> str:
    if all(c in safe for c in text):
        return text
    out = []
    for char in text:
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{octet:02X}" for octet in char.encode("utf-8", "surrogateescape"))
    return "".join(out)
