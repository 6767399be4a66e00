"""Bytes to `Request`/`Response`: one datagram (`parse_message`) or a byte stream (`StreamParser`).

Only the start line and the header list are parsed for every message, plus the typed views every
layer reads anyway (top Via, From, To, CSeq), so that a message this module returns never raises
later when those are read. Everything else stays raw text, parsed on first access (message.py).

The only exception that leaves this module is `RemoteProtocolError`; its `status_hint` is the answer
(400, 414, 416, 505, 513) and its `partial` the request when it holds enough to send that answer.
"""

from __future__ import annotations

import re
from typing import NoReturn

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import parse_name_addr, split_comma_values
from gateway.sip.message import Message, Request, Response, canonical_name

MAX_DATAGRAM = 65535  # RFC 3261 §18.1.1: larger than any UDP payload → 513.
MAX_HEADER_BLOCK = 65535  # stream: start line + headers; past this the peer is not speaking SIP.
MAX_STREAM_BODY = 1 << 20
MAX_REQUEST_URI = 2048  # longer Request-URIs → 414 (RFC 3261 §21.4.12).

REQUIRED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_REQUIRED_SET = frozenset(REQUIRED_HEADERS)
# RFC 3261 §7.3.1: these may carry several comma-separated values on one line; split them.
_LIST_HEADERS = frozenset({"Via", "Route", "Record-Route", "Contact"})
_SINGLE_HEADERS = ("Call-ID", "CSeq", "From", "To", "Content-Length", "Max-Forwards")

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(rf"{_TOKEN}\Z")
_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")
_STREAM_LENGTH_RE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)
_DIGITS = frozenset("0123456789")

_NAME_CACHE: dict[str, str] = {}


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram; a missing Content-Length means the body is the rest of the datagram."""
    return _parse(data, stream=False)


def is_keepalive(data: bytes) -> bool:
    """True for a datagram or stream chunk made only of CRLFs (RFC 5626 §4.4.1 keep-alives)."""
    return bool(data) and not data.strip(b"\r\n")


def _parse(data: bytes, *, stream: bool) -> Request | Response:
    errors: list[tuple[str, int]] = []
    if len(data) > MAX_DATAGRAM and not stream:
        errors.append((f"datagram of {len(data)} bytes is too large", 513))
    start = 0
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise RemoteProtocolError("no blank line after the headers", 400)
    head = data[start:end].decode("utf-8", "surrogateescape")
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)  # RFC 3261 §7.3.1: a folded line reads as one SP
    line_end = head.find("\r\n")
    start_line, header_text = (head, "") if line_end < 0 else (head[:line_end], head[line_end + 2 :])
    message = _start_line(start_line, errors)
    message.headers = _header_list(header_text)
    body = data[end + 4 :]
    _check(message, errors)
    length_text = message.get("Content-Length")
    if length_text is None:
        if stream:
            errors.append(("missing Content-Length on a stream (RFC 3261 §18.3)", 400))
    elif not (0 < len(length_text) <= 10 and _DIGITS.issuperset(length_text)):
        errors.append((f"malformed Content-Length {length_text[:20]!r}", 400))
    else:
        length = int(length_text)
        if length > len(body):
            errors.append((f"body has {len(body)} bytes, Content-Length says {length}", 400))
        else:
            # RFC 3261 §18.3: octets past Content-Length in a datagram are discarded.
            body = body[:length]
    message.body = body
    if errors:
        text, status = errors[0]
        raise RemoteProtocolError(text, status, _answerable(message))
    return message


def _start_line(line: str, errors: list[tuple[str, int]]) -> Message:
    if line[:4].upper() == "SIP/":
        return _status_line(line, errors)
    parts = line.split(" ")
    if len(parts) != 3 or not _TOKEN_RE.match(parts[0]) or not parts[1]:
        raise RemoteProtocolError(f"malformed request line {line[:80]!r}", 400)
    method, uri, version = parts
    if version.upper() != "SIP/2.0":
        status = 505 if version[:4].upper() == "SIP/" else 400
        errors.append((f"unsupported SIP version {version[:20]!r}", status))
    request = Request(method, uri)
    if len(uri) > MAX_REQUEST_URI:
        errors.append((f"Request-URI of {len(uri)} characters", 414))
    else:
        try:
            request.parsed_uri  # noqa: B018 - routing reads it for every request; 416/400 now
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


def _header_list(text: str) -> list[tuple[str, str]]:
    """(canonical name, value) pairs, list headers split; a plain loop measured fastest here."""
    if not text:
        return []
    lines = text.split("\r\n")
    newlines = len(lines) - 1
    if text.count("\n") != newlines or text.count("\r") != newlines:
        raise RemoteProtocolError("bare CR or LF in the header block", 400)
    headers: list[tuple[str, str]] = []
    append = headers.append
    cache = _NAME_CACHE
    for line in lines:
        raw_name, colon, value = line.partition(":")
        name = cache.get(raw_name)
        if name is None:
            name = _new_header_name(raw_name, colon, line)
        value = value.strip()
        if name in _LIST_HEADERS and "," in value:
            headers.extend((name, item) for item in split_comma_values(value))
        else:
            append((name, value))
    return headers


def _new_header_name(raw_name: str, colon: str, line: str) -> str:
    """Canonical name of a header name not seen before; validates it (RFC 3261 §7.3.1)."""
    stripped = raw_name.rstrip(" \t")
    if not colon or not _TOKEN_RE.match(stripped):
        raise RemoteProtocolError(f"malformed header line {line[:80]!r}", 400)
    name = canonical_name(stripped)
    if len(_NAME_CACHE) < 4096:
        _NAME_CACHE[raw_name] = name
    return name


def _check(message: Message, errors: list[tuple[str, int]]) -> None:
    """Mandatory headers (RFC 3261 §8.1.1) present once, typed views that every layer reads valid."""
    headers = message.headers
    first = dict(headers)
    if len(first) != len(headers):  # some name repeats: keep first values, check single ones
        last, first = first, dict(reversed(headers))
        for name in _SINGLE_HEADERS:
            if first.get(name) != last.get(name):
                errors.append((f"several {name} headers", 400))
                return
    if not first.keys() >= _REQUIRED_SET:
        missing = ", ".join(name for name in REQUIRED_HEADERS if name not in first)
        errors.append((f"missing {missing} header", 400))
        return
    try:
        message.top_via  # noqa: B018 - parsed and cached now so later reads cannot fail
        seq, method = message.cseq
        if isinstance(message, Request) and method != message.method:
            errors.append((f"CSeq method {method!r} differs from {message.method!r}", 400))
        message._cache["From"] = parse_name_addr(first["From"])
        message._cache["To"] = parse_name_addr(first["To"])
        if not first["Call-ID"]:
            errors.append(("empty Call-ID", 400))
        message.max_forwards  # noqa: B018
    except RemoteProtocolError as error:
        errors.append((str(error), error.status_hint))


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


class StreamParser:
    """Frames SIP messages out of a TCP/TLS byte stream by Content-Length (RFC 3261 §18.3).

    After an error that loses the framing (no or bad Content-Length, oversized header block) the
    parser is `broken`: every later `next_message` raises the same error and the transport must
    close the connection. Other errors (a bad header in a well-framed message) consume that message
    and parsing goes on.
    """

    __slots__ = ("_buffer", "_pongs", "_error", "max_header_bytes", "max_body_bytes")

    def __init__(self, max_header_bytes: int = MAX_HEADER_BLOCK, max_body_bytes: int = MAX_STREAM_BODY) -> None:
        self._buffer = bytearray()
        self._pongs = 0
        self._error: RemoteProtocolError | None = None
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    @property
    def broken(self) -> bool:
        """True once the framing is lost; the connection should be closed."""
        return self._error is not None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    def pop_keepalive_pongs(self) -> int:
        """How many CRLFCRLF pings arrived since the last call; answer each with one CRLF (RFC 5626 §3.5.1)."""
        pongs, self._pongs = self._pongs, 0
        return pongs

    def next_message(self) -> Request | Response | None:
        """The next complete message, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        if not self._skip_keepalives():
            return None
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self.max_header_bytes:
                self._fail("header block too large", 513)
            return None
        if end > self.max_header_bytes:
            self._fail("header block too large", 513)
        match = _STREAM_LENGTH_RE.search(buffer, 0, end + 2)
        if match is None:
            self._fail("missing Content-Length on a stream (RFC 3261 §18.3)", 400)
        text = match.group(1).strip()
        if not (0 < len(text) <= 10 and text.isdigit()):
            self._fail("malformed Content-Length", 400)
        length = int(text)
        if length > self.max_body_bytes:
            self._fail(f"body of {length} bytes is too large", 513)
        total = end + 4 + length
        if len(buffer) < total:
            return None
        data = bytes(buffer[:total])
        del buffer[:total]
        return _parse(data, stream=True)

    def _skip_keepalives(self) -> bool:
        """Drop CRLFs before a message, counting CRLFCRLF pings; False while only those are buffered."""
        buffer = self._buffer
        while buffer[:1] == b"\r":
            if buffer[:4] == b"\r\n\r\n":
                self._pongs += 1
                del buffer[:4]
            elif len(buffer) < 4 and b"\r\n\r\n".startswith(buffer):
                return False  # maybe the first half of a ping
            elif buffer[:2] == b"\r\n":
                del buffer[:2]
            else:
                break
        return bool(buffer)

    def _fail(self, text: str, status: int) -> NoReturn:
        self._error = RemoteProtocolError(text, status)
        raise self._error
