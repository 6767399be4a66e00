"""Trunks (SPEC T1): SIP providers and customers' PBXs, the numbers they carry come through them.

`secret` is write-only: accepted on create/update, never serialised back; responses carry `has_secret`
(T2). Every field of a trunk is configuration only administrators and number managers see.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from gateway.admin.schemas.common import Name, Out, Secret, Strict, printable

TrunkKind = Literal["provider", "pbx"]
Transport = Literal["udp", "tcp"]
Trust = Literal["source", "registration", "digest"]
NumberHeader = Literal["request_uri", "to", "p_called_party_id", "diversion"]
CallerIdFormat = Literal["e164_plus", "e164", "national"]

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
MAX_DENY_PATTERNS = 50


def _host(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.rstrip(".")
    if name and len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split(".")):
        return name.lower()
    raise ValueError(f"{value!r} is neither a host name (such as sip.provider.example) nor an IP address "
                     "(IPv6 without brackets)")


def _distinct_headers(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError(f"each header at most once; got {', '.join(value)}")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{value!r} is not a valid regular expression: {error}") from None
    return value


Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), AfterValidator(_host),
                 Field(description="the trunk's host name (resolved like every SIP destination) or IP address",
                       examples=["sip.provider.example"])]
Port = Annotated[int, Field(ge=1, le=65535)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(printable)]
TrunkSecret = Annotated[Secret, Field(description="write-only: the password shared with the provider or PBX; "
                                                  "never returned (see has_secret)")]
NumberHeaders = Annotated[
    list[NumberHeader], Field(min_length=1, max_length=4), AfterValidator(_distinct_headers),
    Field(description="where the dialled number of the trunk's INVITEs is read, first match wins",
          examples=[["request_uri", "to"]])]
DenyPattern = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_regex)]
DenyPatterns = Annotated[
    list[DenyPattern], Field(max_length=MAX_DENY_PATTERNS),
    Field(description="regular expressions over the dialled outside number in E.164 with '+'; a match "
                      "refuses the outbound call (emergency, premium numbers)", examples=[[r"^\+3311[25]$"]])]
RegisterExpires = Annotated[int, Field(ge=60, le=86400, description="seconds asked for in outbound REGISTERs")]


def credentials_problem(trust: str, username: str | None, has_secret: bool) -> str | None:
    """Why a trunk's trust cannot work with the credentials it has, or None when it can."""
    if trust in ("registration", "digest") and not (username and has_secret):
        return (f"trust {trust!r} needs a username and a secret (the digest credentials of the trunk); "
                "give both, or trust the trunk by its source address ('source')")
    return None


class TrunkCreate(Strict):
    """A trunk to create. Trusted by `registration` or `digest`, it needs `username` and `secret`."""

    name: Name
    kind: TrunkKind
    host: Host
    port: Port = 5060
    transport: Transport = "udp"
    trust: Trust = "source"
    username: Username | None = None
    secret: TrunkSecret | None = None
    number_headers: NumberHeaders = ["request_uri", "to"]
    caller_id_format: CallerIdFormat = "e164_plus"
    register_expires: RegisterExpires = 3600
    deny_patterns: DenyPatterns = []
    enabled: bool = True


class TrunkUpdate(Strict):
    """A partial change; `username: null` and `secret: null` remove the stored value."""

    name: Name | None = None
    kind: TrunkKind | None = None
    host: Host | None = None
    port: Port | None = None
    transport: Transport | None = None
    trust: Trust | None = None
    username: Username | None = None
    secret: TrunkSecret | None = None
    number_headers: NumberHeaders | None = None
    caller_id_format: CallerIdFormat | None = None
    register_expires: RegisterExpires | None = None
    deny_patterns: DenyPatterns | None = None
    enabled: bool | None = None


class TrunkOut(Out):
    """A trunk as admins and number managers see it: never the secret, only whether one is set."""

    id: int
    name: str
    kind: str
    host: str
    port: int
    transport: str
    trust: str
    username: str | None
    has_secret: bool
    number_headers: list[str]
    caller_id_format: str
    register_expires: int
    deny_patterns: list[str]
    enabled: bool
    number_ids: list[int] = Field(description="the numbers this trunk carries")
    registration: dict[str, Any] | None = Field(
        description="the outbound registration's state (registered, failing with the last status, next "
                    "attempt); null when the gateway keeps none for this trunk")
    created_at: datetime
    updated_at: datetime | None
