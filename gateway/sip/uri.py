"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966).

CONTRACT STUB — to be implemented by the parser work (keep these names and fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SipUri:
    scheme: str  # "sip" | "sips" | "tel" (lower case)
    user: str | None  # unescaped; for tel: the number
    host: str  # IPv6 without brackets; "" for tel
    port: int | None = None
    password: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)  # keys lower case
    headers: dict[str, str] = field(default_factory=dict)

    def to_str(self) -> str:
        raise NotImplementedError


def parse_uri(text: str) -> SipUri:
    """Parse a URI; raises RemoteProtocolError(416) for an unsupported scheme, 400 when malformed."""
    raise NotImplementedError
