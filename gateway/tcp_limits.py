"""The [sip] keys that bound what TCP peers can hold of the gateway (sockets, memory, time).

Kept apart from `gateway.config` (which reads them through `tcp_limits`) so the transport can take a
`TcpLimits` without the rest of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The largest UDP payload: a message that would not fit in a datagram has no business on a stream either.
DEFAULT_MAX_MESSAGE_BYTES = 65535


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Caps on accepted TCP connections and on what one connection may do."""

    # Accepted connections open at once, in all and from one IP address; past either, a new connection
    # is closed at once. The per-source cap must leave room for an office of phones behind one NAT.
    max_connections: int = 1000
    max_connections_per_source: int = 100
    # A connection that carries nothing either way for this long is closed (phones over TCP send
    # CRLF keep-alives every 30-120 s, RFC 5626 §4.4.1, so a live flow is never idle that long).
    idle_seconds: float = 600.0
    # One message (start line, headers and body) past this is refused: 513 when its header block is
    # complete, else the connection is just closed.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Once a message's first byte has arrived, the whole message must arrive within this.
    message_receive_seconds: float = 10.0


# (key, field, default, lowest, highest, example): every key a number in its range.
_KEYS: tuple[tuple[str, str, float, float, float, str], ...] = (
    ("tcp_max_connections", "max_connections", 1000, 1, 1_000_000, "1000"),
    ("tcp_max_connections_per_source", "max_connections_per_source", 100, 1, 1_000_000, "100"),
    ("tcp_idle_seconds", "idle_seconds", 600.0, 0.1, 86_400, "600"),
    ("max_message_bytes", "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, 1024, 16 * 1024 * 1024, "65535"),
    ("message_receive_seconds", "message_receive_seconds", 10.0, 0.1, 3600, "10"),
)
TCP_LIMIT_KEYS = frozenset(key for key, *_ in _KEYS)
_WHOLE = frozenset({"max_connections", "max_connections_per_source", "max_message_bytes"})


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


class TcpLimitError(ValueError):
    """A key of the [sip] table holds an unusable limit; the message says which and what to write."""


def tcp_limits(table: dict[str, Any]) -> TcpLimits:
    """The limits of a [sip] table (keys absent take their defaults)."""
    values: dict[str, float] = {}
    for key, name, default, lowest, highest, example in _KEYS:
        value = table.get(key, default)
        whole = name in _WHOLE
        kind = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not lowest <= value <= highest:
            what = "a whole number" if whole else "a number of seconds"
            raise TcpLimitError(f"sip.{key} must be {what} from {_number(lowest)} to {_number(highest)}, such as {example}")
        values[name] = value if whole else float(value)
    limits = TcpLimits(**values)  # type: ignore[arg-type]
    if limits.max_connections_per_source > limits.max_connections:
        raise TcpLimitError("sip.tcp_max_connections_per_source must not exceed sip.tcp_max_connections")
    return limits
