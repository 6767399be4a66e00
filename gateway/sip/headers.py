"""Structured header values: Via (RFC 3261 §20.42) and name-addr (From, To, Contact, Route).

CONTRACT STUB — to be implemented by the parser work (keep these names and fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str  # upper case: "UDP", "TCP", "TLS"
    host: str  # IPv6 without brackets
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)  # keys lower case, order kept

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def to_str(self) -> str:
        raise NotImplementedError


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;param=value`` or a bare addr-spec; `uri` is the URI text."""

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def to_str(self) -> str:
        raise NotImplementedError


def parse_via(value: str) -> Via:
    """Parse one Via value; raises RemoteProtocolError(400) when malformed."""
    raise NotImplementedError


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr / addr-spec value; raises RemoteProtocolError(400) when malformed."""
    raise NotImplementedError


def split_comma_values(value: str) -> list[str]:
    """Split a header value on commas outside quotes and <>."""
    raise NotImplementedError
