"""A trunk as the SIP side sees it: plain frozen data loaded into the routing directory.

A provider trunk carries many numbers; a customer's PBX is connected the same way. The secret is the
one thing here that must never be logged or returned: `TrunkSpec`'s repr leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TrunkKind(StrEnum):
    """SPEC T1: a SIP provider's trunk (rented numbers) or a customer's own SIP PBX."""

    PROVIDER = "provider"
    PBX = "pbx"


class TrunkTrust(StrEnum):
    """How an INVITE is recognised as coming from the trunk."""

    SOURCE = "source"  # its source address is the trunk's host (a name is resolved)
    REGISTRATION = "registration"  # the gateway registers to the provider; INVITEs from it are trusted
    DIGEST = "digest"  # the PBX registers to the gateway (and authenticates) with the trunk's credentials


class NumberHeader(StrEnum):
    """Where the dialled number of a trunk's INVITE may be read, tried in the trunk's order."""

    REQUEST_URI = "request_uri"
    TO = "to"
    P_CALLED_PARTY_ID = "p_called_party_id"
    DIVERSION = "diversion"


class CallerIdFormat(StrEnum):
    """How the trunk wants our caller ID (and the dialled outside number) written."""

    E164_PLUS = "e164_plus"  # +33612345678
    E164 = "e164"  # 33612345678
    NATIONAL = "national"  # 0612345678, in the region of the calling number


DEFAULT_NUMBER_HEADERS: tuple[NumberHeader, ...] = (NumberHeader.REQUEST_URI, NumberHeader.TO)
DEFAULT_REGISTER_EXPIRES = 3600


@dataclass(frozen=True, slots=True)
class TrunkSpec:
    """One trunk. `secret` is the plain password the provider (or PBX) shares with us: digest
    answers need it. `deny_patterns` are regular expressions over the dialled outside number in
    E.164 with `+` (emergency, premium); a match refuses the outbound call with 403."""

    id: int
    name: str
    kind: TrunkKind
    host: str
    port: int = 5060
    transport: str = "udp"
    trust: TrunkTrust = TrunkTrust.SOURCE
    username: str | None = None
    secret: str | None = field(default=None, repr=False)
    number_headers: tuple[NumberHeader, ...] = DEFAULT_NUMBER_HEADERS
    caller_id_format: CallerIdFormat = CallerIdFormat.E164_PLUS
    register_expires: int = DEFAULT_REGISTER_EXPIRES
    deny_patterns: tuple[str, ...] = ()
    enabled: bool = True

    @property
    def registers(self) -> bool:
        """Whether the gateway keeps a registration at this trunk (provider, trusted by registration)."""
        return self.enabled and self.trust is TrunkTrust.REGISTRATION and bool(self.username)

    def uri(self, user: str | None = None) -> str:
        """The trunk's SIP URI, with `user` as its user part when given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = f"{user}@" if user else ""
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{userinfo}{host}:{self.port}{suffix}"
