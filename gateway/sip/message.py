"""SIP requests and responses as plain objects (RFC 3261 §7).

A message keeps its headers as an ordered list of ``(canonical name, value)`` pairs. The parser
splits comma-separated Via, Route, Record-Route and Contact values into one entry each, so
``get_all(Via)`` is the Via list top first. Typed views (CSeq, Via, From/To tags) are parsed
on first access and cached; any mutation through the methods here clears that cache.
"""

from __future__ import annotations

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import NameAddr, Via, parse_name_addr, parse_via
from gateway.sip.status import reason_phrase
from gateway.sip.uri import SipUri, parse_uri

# RFC 3261 §7.3.3 compact forms, plus the RFC 3515/3891/4028 ones seen in the wild.
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "o": "Event",
    "u": "Allow-Events",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}

_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
        "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
        "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
        "Max-Forwards", "Min-Expires", "MIME-Version", "Organization", "P-Asserted-Identity",
        "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
        "Record-Route", "Refer-To", "Referred-By", "Replaces", "Reply-To", "Require",
        "Retry-After", "Route", "RSeq", "Server", "Session-Expires", "Subject",
        "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent",
        "Via", "Warning", "WWW-Authenticate", "Min-SE", "Path", "Privacy", "Diversion",
    )
}
# The same str object for a long name and its compact form: the C fast path compares names by identity.
_CANONICAL.update({short: _CANONICAL.get(long.lower(), long) for short, long in COMPACT_FORMS.items()})
CANONICAL_NAMES = frozenset(_CANONICAL.values()) | frozenset(COMPACT_FORMS)  # spellings, compact ones too
_DIGITS = frozenset("0123456789")
_UNSET = object()


def parse_cseq(value: str) -> tuple[int, str]:
    """(sequence number, method) of a CSeq value; raises RemoteProtocolError(400) when malformed."""
    parts = value.split()
    # RFC 3261 §8.1.1.5: the number is less than 2**31, so at most 10 ASCII digits.
    if len(parts) != 2 or len(parts[0]) > 10 or not _DIGITS.issuperset(parts[0]):
        raise RemoteProtocolError("malformed CSeq header", 400)
    number = int(parts[0])
    if number >= 2**31:
        raise RemoteProtocolError("CSeq number too large", 400)
    return number, parts[1]


def canonical_name(name: str) -> str:
    """Header name in its canonical spelling; compact forms expanded, unknown names title-cased."""
    known = _CANONICAL.get(name.lower())
    if known is not None:
        return known
    return "-".join(part.capitalize() for part in name.split("-"))


class Message:
    """Common part of `Request` and `Response`: headers and body."""

    # The views every layer reads get a slot each (cheaper than a dict entry); the rarer ones
    # (all Vias, From/To name-addrs, the parsed Request-URI) live in `_cache`.
    __slots__ = ("headers", "body", "_cache", "_call_id", "_cseq", "_top_via", "_from_tag", "_to_tag")

    def __init__(self, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        self.headers: list[tuple[str, str]] = headers if headers is not None else []
        self.body = body
        self._cache: dict[str, object] = {}
        self._forget_views()

    def _forget_views(self) -> None:
        self._call_id: str | None = None
        self._cseq: tuple[int, str] | None = None
        self._top_via: Via | None = None
        self._from_tag: object = _UNSET  # str | None once known
        self._to_tag: object = _UNSET

    # -- header access -------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """First value of header `name` (canonical spelling expected), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name`, in message order."""
        return [value for key, value in self.headers if key == name]

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header with one value, kept at the first one's position."""
        self._cache.clear()
        self._forget_views()
        for index, (key, _) in enumerate(self.headers):
            if key == name:
                self.headers[index] = (name, value)
                self.headers[index + 1 :] = [h for h in self.headers[index + 1 :] if h[0] != name]
                return
        self.headers.append((name, value))

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Add one `name` header; `first=True` puts it before every other header of that name."""
        self._cache.clear()
        self._forget_views()
        if first:
            for index, (key, _) in enumerate(self.headers):
                if key == name:
                    self.headers.insert(index, (name, value))
                    return
            self.headers.insert(0, (name, value))
        else:
            self.headers.append((name, value))

    def remove(self, name: str) -> None:
        """Drop every `name` header."""
        self._cache.clear()
        self._forget_views()
        self.headers = [h for h in self.headers if h[0] != name]

    def remove_first(self, name: str) -> str | None:
        """Drop the first `name` header and return its value (the top Via, a Route)."""
        self._cache.clear()
        self._forget_views()
        for index, (key, value) in enumerate(self.headers):
            if key == name:
                del self.headers[index]
                return value
        return None

    # -- typed views ---------------------------------------------------------------------
    def _required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise RemoteProtocolError(f"missing {name} header", 400)
        return value

    @property
    def call_id(self) -> str:
        value = self._call_id
        if value is None:
            value = self._call_id = self._required("Call-ID")
        return value

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method) of the CSeq header."""
        value = self._cseq
        if value is None:
            value = self._cseq = parse_cseq(self._required("CSeq"))
        return value

    @property
    def vias(self) -> list[Via]:
        """Parsed Via headers, top first."""
        cached = self._cache.get("vias")
        if cached is None:
            cached = [parse_via(value) for value in self.get_all("Via")]
            self._cache["vias"] = cached
        return cached  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        """The first Via (parsed alone: the transaction layer needs only this one)."""
        value = self._top_via
        if value is None:
            value = self._top_via = parse_via(self._required("Via"))
        return value

    def _name_addr(self, name: str) -> NameAddr:
        cached = self._cache.get(name)
        if cached is None:
            cached = parse_name_addr(self._required(name))
            self._cache[name] = cached
        return cached  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("From")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("To")

    @property
    def from_tag(self) -> str | None:
        # The parser leaves the tag here when a plain From needed no full name-addr parse.
        tag = self._from_tag
        if tag is _UNSET:
            tag = self._from_tag = self.from_.tag
        return tag  # type: ignore[return-value]

    @property
    def to_tag(self) -> str | None:
        tag = self._to_tag
        if tag is _UNSET:
            tag = self._to_tag = self.to.tag
        return tag  # type: ignore[return-value]

    @property
    def max_forwards(self) -> int | None:
        value = self.get("Max-Forwards")
        if value is None:
            return None
        value = value.strip()
        # RFC 3261 §20.22: 0-255.
        if not value or len(value) > 10 or not _DIGITS.issuperset(value) or int(value) > 255:
            raise RemoteProtocolError("malformed Max-Forwards header", 400)
        return int(value)

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length always states the body's real length."""
        # ": ".join over the (name, value) tuples keeps the per-header work in C. A parsed message
        # has its Content-Length last: dropping it by a slice spares a filter over every header.
        headers = self.headers
        if headers and headers[-1][0] == "Content-Length":
            headers = headers[:-1]
        text = _CRLF.join(map(_COLON_SP.join, headers))
        if "Content-Length" in text:  # another one (or those words in a value): filter them all
            text = _CRLF.join(map(_COLON_SP.join, [h for h in headers if h[0] != "Content-Length"]))
        if text:
            head = f"{self._start_line()}\r\n{text}\r\nContent-Length: {len(self.body)}\r\n\r\n"
        else:
            head = f"{self._start_line()}\r\nContent-Length: {len(self.body)}\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


_CRLF = "\r\n"
_COLON_SP = ": "


class Request(Message):
    """A SIP request: method, Request-URI (text), headers, body."""

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        # The slots are set here rather than through Message.__init__: calls saved per parsed message.
        self.headers = headers if headers is not None else []
        self.body = body
        self._cache = {}
        self._call_id = self._cseq = self._top_via = None
        self._from_tag = self._to_tag = _UNSET
        self.method = method
        self.uri = uri

    @property
    def parsed_uri(self) -> SipUri:
        """The Request-URI parsed (cached; cleared with the other typed views)."""
        cached = self._cache.get("uri")
        if cached is None or self._cache.get("uri_text") != self.uri:
            cached = parse_uri(self.uri)
            self._cache["uri"] = cached
            self._cache["uri_text"] = self.uri
        return cached  # type: ignore[return-value]

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response: status code, reason phrase, headers, body."""

    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.headers = headers if headers is not None else []
        self.body = body
        self._cache = {}
        self._call_id = self._cseq = self._top_via = None
        self._from_tag = self._to_tag = _UNSET
        self.status = status
        self.reason = reason

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to `request` per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied.

    `to_tag` is added to To when the request's To has no tag yet (§8.2.6.2); the 100 Trying
    never gets one.
    """
    copied = _COPIED_INTO_100 if status == 100 else _COPIED_INTO_RESPONSES
    headers = [header for header in request.headers if header[0] in copied]
    if to_tag is not None and status != 100:
        for index, (key, value) in enumerate(headers):
            if key == "To" and request.to_tag is None:
                headers[index] = ("To", f"{value};tag={to_tag}")
    return Response(status, reason if reason is not None else reason_phrase(status), headers)


_COPIED_INTO_RESPONSES = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})
_COPIED_INTO_100 = _COPIED_INTO_RESPONSES | {"Timestamp"}  # RFC 3261 §8.2.6.1
