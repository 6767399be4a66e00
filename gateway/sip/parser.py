"""Bytes to `Request`/`Response`: one datagram (`parse_message`) or one message a stream framed
(`parse_framed`, used by `gateway.sip.stream.StreamParser`).

Every message gets its start line and header list parsed, plus what transactions read anyway (top
Via, CSeq, Call-ID, From/To tags), and is checked as far as needed so that a message this module
returns never raises later when those, Max-Forwards or the Request-URI are read (tests pin this).
Checks of the usual forms are one regex each (R-URI, Via, From/To); the full parsers run on first
access, or at once for unusual forms. Header lines seen before (per peer, most lines repeat on every
call) come from a bounded cache. Measured with ``python -m bench.parse_bench``.

The only exception that leaves this module is `RemoteProtocolError`; its `status_hint` is the answer
(400, 414, 416, 505, 513) and its `partial` the request when it holds enough to send that answer.
"""

from __future__ import annotations

import re
from itertools import islice

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import (
    NOT_PLAIN,
    Via,
    parse_name_addr,
    parse_via,
    plain_name_addr_tag,
    split_comma_values,
)
from gateway.sip.message import CANONICAL_NAMES, Message, Request, Response, canonical_name, parse_cseq
from gateway.sip.uri import PLAIN_SIP_URI_PATTERN, is_plain_sip_uri

try:
    from gateway.sip import _speedups  # type: ignore[attr-defined]
except ImportError:  # built by `pip install` when a C compiler is there; the Python path is the reference
    _speedups = None

MAX_DATAGRAM = 65535  # RFC 3261 §18.1.1: larger than any UDP payload → 513.
MAX_REQUEST_URI = 2048  # longer Request-URIs → 414 (RFC 3261 §21.4.12).

REQUIRED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_REQUIRED_SET = frozenset(REQUIRED_HEADERS)
# RFC 3261 §7.3.1: these may carry several comma-separated values on one line; split them.
_LIST_HEADERS = frozenset({"Via", "Route", "Record-Route", "Contact"})
_SINGLE_HEADERS = ("Call-ID", "CSeq", "From", "To", "Content-Length", "Max-Forwards")

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(rf"{_TOKEN}\Z")
_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")
_DIGITS = frozenset("0123456789")

_NAME_CACHE: dict[str, str] = {}  # raw name -> canonical name; append-only (the C fast path relies on it)
_NAME_CACHE.update(
    (spelling, canonical_name(spelling))
    for name in CANONICAL_NAMES
    for spelling in (name, name.lower(), name.upper())
)
# Whole header lines seen before (Allow, Supported, User-Agent, Max-Forwards, Content-Type... repeat
# on every call from one peer) → their (name, value) pair: one dict lookup instead of a parse.
# Lines that differ on every call or carry credentials are not kept; the dict is emptied when full.
_LINE_CACHE: dict[str, tuple[str, str]] = {}
_MAX_CACHED_LINES = 4096
_MAX_CACHED_LINE = 200
_PER_CALL_HEADERS = frozenset({"Via", "From", "To", "Call-ID", "Authorization", "Proxy-Authorization"})
# Methods seen on every call: a set lookup instead of the token regex.
_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
                      "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"})
_S = ("S", "s")
# Method, a plain sip:/sips: Request-URI that `parse_uri` surely accepts, SIP/2.0: one C-level match.
_PLAIN_REQUEST_LINE_RE = re.compile(rf"({_TOKEN}) ({PLAIN_SIP_URI_PATTERN}) SIP/2\.0")


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram; a missing Content-Length means the body is the rest of the datagram."""
    return _parse(data, stream=False)


def parse_framed(data: bytes) -> Request | Response:
    """Parse one message a stream framed by Content-Length (`gateway.sip.stream.StreamParser`)."""
    return _parse(data, stream=True)


def use_speedups(enabled: bool = True) -> bool:
    """Switch the C fast path on or off (tests, benchmarks); returns whether it is on now.

    On by default when the extension is built. Either way `parse_message` returns the same messages
    and raises the same errors: the fast path only takes plainly well-formed messages and declines
    the rest to the Python parser (tests/sip/test_parser_speedups.py holds both paths to that).
    """
    global _scan
    _scan = _speedups.scan if enabled and _speedups is not None else None
    return _scan is not None


def scan_plain(data: bytes, *, stream: bool = False) -> Request | Response | None:
    """The fast path alone: the message, or None when it declines (or is not built)."""
    if _speedups is None:
        return None
    scanned = _speedups.scan(data, stream)
    return None if scanned is None else _from_scan(scanned)


def _from_scan(scanned: tuple) -> Request | Response:  # type: ignore[type-arg]
    first, second, headers, body, call_id, cseq, top_via, from_tag, to_tag, needs_split = scanned
    if needs_split:  # a Route, Record-Route, Contact or lower Via line with several values
        headers = _split_list_values(headers)
    message: Request | Response
    if first.__class__ is str:
        message = Request(first, second, headers, body)
    else:
        message = Response(first, second, headers, body)
    message._call_id = call_id
    message._cseq = cseq
    message._top_via = top_via
    message._from_tag = from_tag
    message._to_tag = to_tag
    return message


def _split_list_values(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    split: list[tuple[str, str]] = []
    for name, value in headers:
        if "," in value and name in _LIST_HEADERS:
            split.extend((name, item) for item in split_comma_values(value))
        else:
            split.append((name, value))
    return split


def is_keepalive(data: bytes) -> bool:
    """True for a datagram or stream chunk made only of CRLFs (RFC 5626 §4.4.1 keep-alives)."""
    return bool(data) and not data.strip(b"\r\n")


def _parse(data: bytes, *, stream: bool) -> Request | Response:
    scan = _scan
    if scan is not None:
        scanned = scan(data, stream)
        if scanned is not None:
            return _from_scan(scanned)
    errors: list[tuple[str, int]] = []
    if len(data) > MAX_DATAGRAM and not stream:
        errors.append((f"datagram of {len(data)} bytes is too large", 513))
    if data.startswith(b"\r\n"):
        data = _skip_leading_crlfs(data)
    head_bytes, blank_line, body = data.partition(b"\r\n\r\n")
    if not blank_line:
        raise RemoteProtocolError("no blank line after the headers", 400)
    head = head_bytes.decode("utf-8", "surrogateescape")
    lines = head.split("\r\n")
    try:
        headers = _header_list(lines)
    except (_Folded, RemoteProtocolError):
        if "\n " not in head and "\n\t" not in head:
            raise
        head = _FOLD_RE.sub(" ", head)  # RFC 3261 §7.3.1: a folded line reads as one SP
        lines = head.split("\r\n")
        headers = _header_list(lines)
    message = _start_line(lines[0], errors)
    message.headers = headers
    length_text = _check(message, errors).get("Content-Length")
    if length_text is None:
        if stream:
            errors.append(("missing Content-Length on a stream (RFC 3261 §18.3)", 400))
    elif not (0 < len(length_text) <= 10 and _DIGITS.issuperset(length_text)):
        errors.append((f"malformed Content-Length {length_text[:20]!r}", 400))
    else:
        length = int(length_text)
        if length > len(body):
            errors.append((f"body has {len(body)} bytes, Content-Length says {length}", 400))
        elif length < len(body):
            # RFC 3261 §18.3: octets past Content-Length in a datagram are discarded.
            body = body[:length]
    message.body = body
    if errors:
        text, status = errors[0]
        raise RemoteProtocolError(text, status, _answerable(message))
    return message


def _skip_leading_crlfs(data: bytes) -> bytes:
    """RFC 3261 §7.5: CRLFs before the start line are ignored (whole CRLFs only)."""
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    return data[start:]


def _start_line(line: str, errors: list[tuple[str, int]]) -> Request | Response:
    plain = _PLAIN_REQUEST_LINE_RE.fullmatch(line)
    if plain is not None and len(line) <= MAX_REQUEST_URI:
        return Request(plain[1], plain[2])  # its Request-URI is parsed on first access
    if line[:1] in _S and line[:4].upper() == "SIP/":
        return _status_line(line, errors)
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1] or (parts[0] not in _METHODS and not _TOKEN_RE.match(parts[0])):
        raise RemoteProtocolError(f"malformed request line {line[:80]!r}", 400)
    method, uri, version = parts
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        status = 505 if version[:4].upper() == "SIP/" else 400
        errors.append((f"unsupported SIP version {version[:20]!r}", status))
    request = Request(method, uri)
    if len(uri) > MAX_REQUEST_URI:
        errors.append((f"Request-URI of {len(uri)} characters", 414))
    elif not is_plain_sip_uri(uri):
        # Only unusual URIs are parsed now (for their 416/400); plain ones are parsed on first access.
        try:
            request.parsed_uri  # noqa: B018
        except RemoteProtocolError as error:
            errors.append((str(error), error.status_hint))
    return request


def _status_line(line: str, errors: list[tuple[str, int]]) -> Response:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not _DIGITS.issuperset(code) or not "1" <= code[0] <= "6":
        raise RemoteProtocolError(f"malformed status line {line[:80]!r}", 400)
    if version.upper() != "SIP/2.0":
        errors.append((f"unsupported SIP version {version[:20]!r}", 505))
    return Response(int(code), reason)


def _header_list(lines: list[str]) -> list[tuple[str, str]]:
    """(canonical name, value) pairs of the header lines (all but the first), list headers split.

    A plain loop measured fastest (a map over `_LINE_CACHE` plus fix-ups was slower); splitting on
    ": " first leaves most values with nothing to strip. Raises `_Folded` at a continuation line.
    """
    headers: list[tuple[str, str]] = []
    append = headers.append
    known_lines = _LINE_CACHE
    for line in islice(lines, 1, None):
        pair = known_lines.get(line)
        if pair is not None:
            append(pair)
            continue
        if "\r" in line or "\n" in line:  # not part of a CRLF: so a remembered line never has one
            raise RemoteProtocolError("bare CR or LF in the header block", 400)
        raw_name, colon, value = line.partition(": ")
        name = _NAME_CACHE.get(raw_name)
        if name is None or not colon:
            # Not "Name: value" with a known name: split on the first ':' (the name holds none).
            raw_name, colon, value = line.partition(":")
            name = _NAME_CACHE.get(raw_name)
            if name is None or not colon:
                name = _new_header_name(raw_name, colon, line)
        value = value.strip()
        if "," in value and name in _LIST_HEADERS:
            headers.extend((name, item) for item in split_comma_values(value))
            continue  # not cached: a hit stands for one entry
        pair = (name, value)
        append(pair)
        if name not in _PER_CALL_HEADERS and len(line) <= _MAX_CACHED_LINE:
            if len(known_lines) >= _MAX_CACHED_LINES:
                known_lines.clear()
            known_lines[line] = pair
    return headers


class _Folded(Exception):
    """A header line continues the one before (RFC 3261 §7.3.1): unfold the block and start again."""


def _new_header_name(raw_name: str, colon: str, line: str) -> str:
    """Canonical name of a header name not seen before; validates it (RFC 3261 §7.3.1)."""
    if line[:1] in (" ", "\t"):
        raise _Folded
    stripped = raw_name.rstrip(" \t")
    if not colon or not _TOKEN_RE.match(stripped):
        raise RemoteProtocolError(f"malformed header line {line[:80]!r}", 400)
    name = canonical_name(stripped)
    if len(_NAME_CACHE) < 4096:
        _NAME_CACHE[raw_name] = name
    return name


def _check(message: Message, errors: list[tuple[str, int]]) -> dict[str, str]:
    """Mandatory headers (RFC 3261 §8.1.1) present once, what transactions read parsed and cached.

    Returns the first value of each header name.

    From/To of the plain form are only checked by one regex here (their tags kept); the full
    name-addr parse waits for the first reader, as does the rest of every header.
    """
    headers = message.headers
    first = dict(headers)
    if len(first) != len(headers):  # some name repeats: keep first values, check single ones
        last, first = first, dict(reversed(headers))
        for name in _SINGLE_HEADERS:
            if first.get(name) != last.get(name):
                errors.append((f"several {name} headers", 400))
                return first
    if not first.keys() >= _REQUIRED_SET:
        missing = ", ".join(name for name in REQUIRED_HEADERS if name not in first)
        errors.append((f"missing {missing} header", 400))
        return first
    try:
        message._top_via = parse_via(first["Via"])
        seq, method = message._cseq = parse_cseq(first["CSeq"])
        if isinstance(message, Request) and method != message.method:
            errors.append((f"CSeq method {method!r} differs from {message.method!r}", 400))
        message._from_tag = _name_addr_tag(message, "From", first["From"])
        message._to_tag = _name_addr_tag(message, "To", first["To"])
        call_id = message._call_id = first["Call-ID"]
        if not call_id:
            errors.append(("empty Call-ID", 400))
        max_forwards = first.get("Max-Forwards")
        # RFC 3261 §20.22: 0-255.
        if max_forwards is not None and not (
            0 < len(max_forwards) <= 3 and _DIGITS.issuperset(max_forwards) and int(max_forwards) <= 255
        ):
            message.max_forwards  # noqa: B018 - raises the 400 (or accepts what the short test did not)
    except RemoteProtocolError as error:
        errors.append((str(error), error.status_hint))
    return first


def _name_addr_tag(message: Message, name: str, value: str) -> str | None:
    """Validate a From/To value and return its tag; a value not in the plain form is parsed whole now."""
    tag = plain_name_addr_tag(value)
    if tag is NOT_PLAIN:
        message._cache[name] = parsed = parse_name_addr(value)
        return parsed.tag
    return tag  # type: ignore[return-value]


def _answerable(message: Message) -> Request | None:
    """The request when an answer can be built from it: the five headers, a usable top Via."""
    if not isinstance(message, Request):
        return None
    if any(message.get(name) is None for name in REQUIRED_HEADERS):
        return None
    try:
        message.top_via  # noqa: B018
    except RemoteProtocolError:
        return None
    return message



_scan = None
if _speedups is not None:
    _speedups.configure(
        _NAME_CACHE,
        tuple(canonical_name(name) for name in (
            "Via", "From", "To", "Call-ID", "CSeq", "Content-Length", "Max-Forwards", "Route",
            "Record-Route", "Contact",
        )),
        Via,
    )
    use_speedups()
