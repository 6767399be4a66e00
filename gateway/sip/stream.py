"""Framing SIP messages out of a TCP/TLS byte stream by Content-Length (RFC 3261 §18.3)."""

from __future__ import annotations

import re
from typing import NoReturn

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_framed, parse_message

MAX_HEADER_BLOCK = 65535  # start line + headers; past this the peer is not speaking SIP.
MAX_STREAM_BODY = 1 << 20
_STREAM_LENGTH_RE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)


class StreamParser:
    """Frames SIP messages out of a TCP/TLS byte stream by Content-Length (RFC 3261 §18.3).

    After an error that loses the framing (no or bad Content-Length, oversized header block or
    message) the parser is `broken`: every later `next_message` raises the same error and the
    transport must close the connection. A message refused for its size whose header block is
    complete carries the request as `partial`, so it can be answered 513 before the close. Other
    errors (a bad header in a well-framed message) consume that message and parsing goes on.
    """

    __slots__ = ("_buffer", "_pongs", "_error", "max_header_bytes", "max_body_bytes", "max_message_bytes")

    def __init__(
        self,
        max_header_bytes: int = MAX_HEADER_BLOCK,
        max_body_bytes: int = MAX_STREAM_BODY,
        max_message_bytes: int | None = None,
    ) -> None:
        """`max_message_bytes` bounds a whole message (header block and body together); None: only the
        two separate bounds apply."""
        self._buffer = bytearray()
        self._pongs = 0
        self._error: RemoteProtocolError | None = None
        self.max_header_bytes = max_header_bytes if max_message_bytes is None else min(max_header_bytes, max_message_bytes)
        self.max_body_bytes = max_body_bytes
        self.max_message_bytes = max_message_bytes

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
            # The last three bytes may begin the blank line: only past them is the block surely too large
            # (else how the bytes were cut would decide between this and an answerable refusal below).
            if len(buffer) - 3 > self.max_header_bytes:
                self._fail("header block too large", 513)
            return None
        if end > self.max_header_bytes:
            self._fail("header block too large", 513, bytes(buffer[: end + 4]))
        match = _STREAM_LENGTH_RE.search(buffer, 0, end + 2)
        if match is None:
            self._fail("missing Content-Length on a stream (RFC 3261 §18.3)", 400)
        text = match.group(1).strip()
        if not (0 < len(text) <= 10 and text.isdigit()):
            self._fail("malformed Content-Length", 400)
        length = int(text)
        if length > self.max_body_bytes:
            self._fail(f"body of {length} bytes is too large", 513, bytes(buffer[: end + 4]))
        total = end + 4 + length
        if self.max_message_bytes is not None and total > self.max_message_bytes:
            self._fail(f"message of {total} bytes is larger than {self.max_message_bytes}", 513, bytes(buffer[: end + 4]))
        if len(buffer) < total:
            return None
        data = bytes(buffer[:total])
        del buffer[:total]
        return parse_framed(data)

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

    def _fail(self, text: str, status: int, head: bytes = b"") -> NoReturn:
        """Break the framing; `head`, a complete header block, gives the request to answer if it has one."""
        self._error = RemoteProtocolError(text, status, _request_of(head) if head else None)
        raise self._error


def _request_of(head: bytes) -> Request | None:
    """The request a header block (blank line included) holds, when enough of it parses to answer."""
    try:
        message = parse_message(head)
    except RemoteProtocolError as error:
        # Its body is not there: the Content-Length mismatch is expected, the partial is what counts.
        return error.partial
    return message if isinstance(message, Request) else None
