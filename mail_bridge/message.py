"""One raw message → what linking needs (pure, no I/O): who, to whom, when, which thread, which key.

Only the header block is parsed (``BytesHeaderParser``): linking needs no body, so a broken MIME
structure, a 20 MB attachment or a body in an unknown charset never costs more than holding the raw bytes
and never stops a sync. Headers are read leniently: raw 8-bit bytes are decoded as UTF-8, else Latin-1;
RFC 2047 words that do not decode are kept as written; every problem is listed in ``defects``.

A message without a usable Message-ID gets a synthetic key from the SHA-256 of its bytes, so the same
message found twice (two folders, a restart) still has one key (SPEC M12, C2).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from gateway.crm_bridge.identity import normalize_email

#: The longest key the message_key column holds; longer Message-IDs are keyed by their SHA-256.
MAX_KEY_LENGTH = 200

_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class ParsedMail:
    """The headers of one message that linking and storage use; addresses are normalised (SPEC O5)."""

    message_key: str
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_address: str | None
    from_name: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    received_at: datetime | None
    received_zone: str | None
    defects: tuple[str, ...]
    size: int

    @property
    def thread_refs(self) -> tuple[str, ...]:
        """Every message this one answers (In-Reply-To first, then References), each key once."""
        refs = ((self.in_reply_to,) if self.in_reply_to else ()) + self.references
        return tuple(dict.fromkeys(key_of(ref) for ref in refs))

    @property
    def thread_key(self) -> str:
        """The thread's root: the first of References, else In-Reply-To, else this message itself."""
        root = self.references[0] if self.references else self.in_reply_to
        return key_of(root) if root else self.message_key

    @property
    def recipients(self) -> tuple[str, ...]:
        """To then Cc, each address once."""
        return tuple(dict.fromkeys(self.to + self.cc))


def key_of(message_id: str) -> str:
    """The storage key of a Message-ID: itself, or its SHA-256 when too long for the column."""
    if len(message_id) <= MAX_KEY_LENGTH:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def synthetic_key(raw: bytes) -> str:
    """The key of a message with no usable Message-ID: the same bytes always give the same key."""
    return "synthetic:" + hashlib.sha256(raw).hexdigest()


def _unescape(value: str) -> tuple[str, bool]:
    """Raw 8-bit header bytes (kept as surrogates by the parser) as text; True when they were not UTF-8."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value, False
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("latin-1"), True


def _raw_values(message: Message, name: str) -> list[str]:
    """A header's values as stored (8-bit bytes kept as surrogates: ``get`` would turn them into U+FFFD)."""
    wanted = name.lower()
    return [str(value) for key, value in message.raw_items() if key.lower() == wanted]


def _text(message: Message, name: str, defects: list[str]) -> str | None:
    """A header as readable text (RFC 2047 decoded when it can be), None when absent."""
    values = _raw_values(message, name)
    if not values:
        return None
    value, latin = _unescape(values[0])
    if latin:
        defects.append(f"{name}: 8-bit bytes that are not UTF-8, read as Latin-1")
    try:
        value = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError) as exc:
        defects.append(f"{name}: encoded words not decoded ({type(exc).__name__})")
    return " ".join(value.split())


def _addresses(message: Message, name: str, defects: list[str]) -> list[tuple[str, str]]:
    """(display name, normalised address) pairs of an address header; unusable entries are dropped."""
    found: list[tuple[str, str]] = []
    for raw in _raw_values(message, name):
        value, _ = _unescape(raw)
        for display, address in getaddresses([value]):
            normal = normalize_email(address) if address else None
            if normal is None:
                if address or display:
                    defects.append(f"{name}: {address or display!r} is not an address")
                continue
            found.append((_decoded_name(display), normal))
    return found


def _decoded_name(display: str) -> str:
    try:
        return " ".join(str(make_header(decode_header(display))).split())
    except (LookupError, UnicodeError, ValueError):
        return display.strip()


def _date(message: Message, defects: list[str]) -> tuple[datetime | None, str | None]:
    """The Date header in UTC and the zone it was written in (M6); an unreadable date is a defect."""
    raw = message.get("Date")
    if raw is None:
        return None, None
    try:
        when = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        defects.append(f"Date: {str(raw)[:60]!r} is not a date")
        return None, None
    if when.tzinfo is None:  # RFC 5322 "-0000": the zone is unknown, the time is UTC
        return when.replace(tzinfo=UTC), None
    offset = when.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return when.astimezone(UTC), f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _ids(value: str | None) -> list[str]:
    return _MSG_ID.findall(value or "")


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def header_block(raw: bytes) -> bytes:
    """The header block of a message: the parser never sees (nor copies) the body."""
    end = _BLANK_LINE.search(raw)
    return raw[: end.end()] if end else raw


def parse_message(raw: bytes) -> ParsedMail:
    """The linking-relevant headers of ``raw`` (a whole RFC 5322 message); never raises on bad input."""
    defects: list[str] = []
    message = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    defects.extend(type(defect).__name__ for defect in message.defects)
    message_ids = _ids(_text(message, "Message-ID", defects))
    message_id = message_ids[0] if message_ids else None
    if message_id is None:
        defects.append("no usable Message-ID: keyed by the message's SHA-256")
    senders = _addresses(message, "From", defects)
    received_at, zone = _date(message, defects)
    reply_to = _ids(_text(message, "In-Reply-To", defects))
    return ParsedMail(
        message_key=key_of(message_id) if message_id else synthetic_key(raw),
        message_id=message_id,
        in_reply_to=reply_to[0] if reply_to else None,
        references=tuple(dict.fromkeys(_ids(_text(message, "References", defects)))),
        from_address=senders[0][1] if senders else None,
        from_name=(senders[0][0] or None) if senders else None,
        to=tuple(dict.fromkeys(a for _, a in _addresses(message, "To", defects))),
        cc=tuple(dict.fromkeys(a for _, a in _addresses(message, "Cc", defects))),
        subject=(_text(message, "Subject", defects) or "")[:998],
        received_at=received_at,
        received_zone=zone,
        defects=tuple(defects),
        size=len(raw),
    )
