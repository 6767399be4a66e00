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
# The usual ``SIP/2.0/UDP host[:port];params`` without LWS, IPv6 or quotes, in one C-level match;
# anything else takes the full grammar above.
_PLAIN_VIA_RE = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) ([A-Za-z0-9_.\-]+)(?::([0-9]{1,5}))?"
    # the parameters nearly every Via carries (RFC 3261 §8.1.1.7, RFC 3581 §4), or any others
    r"(?:;branch=([A-Za-z0-9\-.!%*_+`'~]+)(;rport)?|;rport;branch=([A-Za-z0-9\-.!%*_+`'~]+)|;([^\"]*))?"
)
# A name-addr / addr-spec that `parse_name_addr` surely accepts: quoted display without escapes or
# token display, URI without LWS, header parameters without LWS or quotes. Group 1: a first tag;
# group 2: any parameters after it.
# Printable ASCII ranges rather than negated \\s: sre tests them with one bitmap lookup per character.
_PLAIN_NAME_ADDR_RE = re.compile(
    r'(?:(?:"[^"\\]*"[ \t]*|[A-Za-z0-9\-.!%*_+`\'~ \t]*)<[!#-9;=?-~]+:[!#-;=?-~]*>|[!#-9=?-~]+:[!#-:=?-~]*)'
    r'(?:;tag=([!#-:=?-~]+))?((?:;[A-Za-z0-9\-.!%*_+`\'~]+(?:=[!#-:=?-~]+)?)*)'
)
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
    match = _PLAIN_VIA_RE.fullmatch(value)
    if match is not None:
        transport, host, port_text, branch, rport, branch_after_rport, param_text = match.groups()
        port = None if port_text is None else int(port_text)
        if port is None or port <= 65535:
            params: dict[str, str | None]
            if branch is not None:
                params = {"branch": branch} if rport is None else {"branch": branch, "rport": None}
            elif branch_after_rport is not None:
                params = {"rport": None, "branch": branch_after_rport}
            else:
                params = _parse_params(param_text) if param_text else {}
            return Via(transport.upper(), host, port, params)
    return _parse_via_full(value)


def _parse_via_full(value: str) -> Via:
    """The whole RFC 3261 §20.42 / §25.1 grammar: LWS, IPv6 references, quoted parameter values."""
    head, _, param_text = value.partition(";") if '"' not in value else _split_first_semicolon(value)
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


NOT_PLAIN = object()  # `plain_name_addr_tag`: the value needs `parse_name_addr`


def plain_name_addr_tag(value: str) -> object:
    """The tag (or None) of a From/To value in the plain form; `NOT_PLAIN` when it needs `parse_name_addr`.

    Plain: display and URI as `_PLAIN_NAME_ADDR_RE` allows, no parameter or only ``;tag=...``. A
    value this accepts is one `parse_name_addr` accepts with the same tag, so the full parse can
    wait until someone reads more than the tag.
    """
    match = _PLAIN_NAME_ADDR_RE.fullmatch(value)
    if match is None:
        return NOT_PLAIN
    tag, other_params = match.groups()
    return NOT_PLAIN if other_params else tag


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
