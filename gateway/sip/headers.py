"""Structured header values: Via (RFC 3261 §20.42) and name-addr (From, To, Contact, Route).

Parameter names are lower-cased (they are case-insensitive, §7.3.1); parameter values are kept as
written, quotes included, so that `to_str` gives back an equivalent header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.sip.errors import RemoteProtocolError

# sent-protocol SP sent-by, with the LWS that RFC 3261 §25.1 allows around "/" and ":".
_VIA_RE = re.compile(
    r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*\Z"
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_PLAIN_TRANSPORT_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_PLAIN_HOST_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*\Z")


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str  # upper case: "UDP", "TCP", "TLS"
    host: str  # IPv6 without brackets
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)  # keys lower case, order kept

    @property
    def branch(self) -> str | None:
        """The branch parameter (RFC 3261 §8.1.1.7), None when absent."""
        return self.params.get("branch")

    def to_str(self) -> str:
        """The Via value as text."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"SIP/2.0/{self.transport} {host}" if self.port is None else (
            f"SIP/2.0/{self.transport} {host}:{self.port}"
        )
        return text + _params_to_str(self.params)


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;param=value`` or a bare addr-spec; `uri` is the URI text."""

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The tag parameter (RFC 3261 §19.3), None when absent."""
        return self.params.get("tag")

    def to_str(self) -> str:
        """Always the name-addr form, so URI parameters can never be read as header ones."""
        if self.uri == "*":
            return "*"
        if self.display:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            text = f'"{escaped}" <{self.uri}>'
        else:
            text = f"<{self.uri}>"
        return text + _params_to_str(self.params)


def _params_to_str(params: dict[str, str | None]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params.items())


def parse_via(value: str) -> Via:
    """Parse one Via value; raises RemoteProtocolError(400) when malformed."""
    head, _, param_text = value.partition(";") if '"' not in value else _split_first_semicolon(value)
    if head.startswith("SIP/2.0/"):
        via = _parse_plain_via(head, param_text)
        if via is not None:
            return via
    match = _VIA_RE.match(head)
    if match is None:
        raise RemoteProtocolError(f"malformed Via {value[:80]!r}", 400)
    protocol, version, transport, host, port_text = match.groups()
    if protocol.upper() != "SIP" or version != "2.0":
        raise RemoteProtocolError(f"unsupported Via protocol {protocol}/{version}", 400)
    if host[0] == "[":
        host = host[1:-1]
        if ":" not in host:
            raise RemoteProtocolError(f"malformed Via host {value[:80]!r}", 400)
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise RemoteProtocolError(f"malformed Via port {value[:80]!r}", 400)
    params = _parse_params(param_text) if param_text else {}
    return Via(transport.upper(), host, port, params)


def _parse_plain_via(head: str, param_text: str) -> Via | None:
    """The common ``SIP/2.0/UDP host[:port]`` without LWS and IPv6; None to use the full grammar."""
    transport, space, sent_by = head[8:].partition(" ")
    if not space or " " in sent_by or "[" in sent_by:
        return None
    host, colon, port_text = sent_by.partition(":")
    if not _PLAIN_TRANSPORT_RE.match(transport) or not _PLAIN_HOST_RE.match(host):
        return None
    port = None
    if colon:
        if not (0 < len(port_text) <= 5 and port_text.isdigit() and port_text.isascii()):
            return None
        port = int(port_text)
        if port > 65535:
            return None
    params = _parse_params(param_text) if param_text else {}
    return Via(transport.upper(), host, port, params)


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr / addr-spec value; raises RemoteProtocolError(400) when malformed."""
    text = value.strip()
    if text == "*":
        return NameAddr(None, "*", {})
    display: str | None = None
    if text.startswith('"'):
        display, end = _quoted_string(text, 0)
        text = text[end:].lstrip()
        if not text.startswith("<"):
            raise RemoteProtocolError(f"display name without <URI> in {value[:80]!r}", 400)
    lt = text.find("<")
    if lt >= 0:
        if lt > 0:
            plain = text[:lt].strip()
            if not _DISPLAY_TOKENS_RE.match(plain):
                raise RemoteProtocolError(f"malformed display name in {value[:80]!r}", 400)
            display = plain or None
        gt = text.find(">", lt)
        if gt < 0:
            raise RemoteProtocolError(f"unclosed <URI> in {value[:80]!r}", 400)
        uri = text[lt + 1 : gt].strip()
        rest = text[gt + 1 :].strip()
        if rest and rest[0] != ";":
            raise RemoteProtocolError(f"junk after <URI> in {value[:80]!r}", 400)
        param_text = rest[1:]
    else:
        # RFC 3261 §20.10: without <>, parameters after the URI belong to the header.
        uri, _, param_text = text.partition(";")
        uri = uri.strip()
        if any(c in uri for c in ' \t"<>'):
            raise RemoteProtocolError(f"malformed addr-spec {value[:80]!r}", 400)
    if ":" not in uri or uri[0] == ":":
        raise RemoteProtocolError(f"malformed URI in {value[:80]!r}", 400)
    params = _parse_params(param_text) if param_text else {}
    return NameAddr(display, uri, params)


def split_comma_values(value: str) -> list[str]:
    """Split a header value on commas outside quotes and <>; empty elements are dropped."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    parts: list[str] = []
    start = 0
    in_quotes = in_angle = escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    return [part.strip() for part in parts if part.strip()]


def _quoted_string(text: str, start: int) -> tuple[str, int]:
    """Unescaped content of the quoted-string at `start` and the index after its closing quote."""
    close = text.find('"', start + 1)
    if close > 0 and "\\" not in text[start + 1 : close]:
        return text[start + 1 : close], close + 1
    index = start + 1
    out: list[str] = []
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                break
            out.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(out), index + 1
        else:
            out.append(char)
            index += 1
    raise RemoteProtocolError(f"unterminated quoted string in {text[:80]!r}", 400)


def _split_first_semicolon(value: str) -> tuple[str, str, str]:
    parts = _split_params_quoted(value)
    return parts[0], ";", ";".join(parts[1:])


def _split_params_quoted(text: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    parts: list[str] = []
    start = 0
    in_quotes = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == ";" and not in_quotes:
            parts.append(text[start:index])
            start = index + 1
    if in_quotes:
        raise RemoteProtocolError(f"unterminated quoted string in {text[:80]!r}", 400)
    parts.append(text[start:])
    return parts


def _parse_params(text: str) -> dict[str, str | None]:
    """``;name=value;flag`` (text after the first ';') to a dict with lower-case names."""
    params: dict[str, str | None] = {}
    items = text.split(";") if '"' not in text else _split_params_quoted(text)
    lws = " " in text or "\t" in text
    known = _KNOWN_PARAM_NAMES
    for item in items:
        name, equals, raw = item.partition("=")
        if lws:
            name = name.strip()
            raw = raw.strip()
        lower = known.get(name)
        if lower is None:
            if not _TOKEN_RE.match(name):
                raise RemoteProtocolError(f"malformed header parameter {item[:60]!r}", 400)
            lower = name.lower()
        if equals:
            if not raw:
                raise RemoteProtocolError(f"empty value of parameter {name!r}", 400)
            params[lower] = raw
        else:
            params[lower] = None
    return params


# Parameter names read on every message; skipping their validation is a measured win.
_KNOWN_PARAM_NAMES = {
    name: name.lower()
    for name in ("branch", "rport", "received", "maddr", "ttl", "tag", "expires", "q", "lr", "transport",
                 "user", "alias", "keep", "ob", "reg-id", "+sip.instance", "refresher", "method")
}
