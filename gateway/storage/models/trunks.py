"""Trunks (SPEC T1): the SIP providers and customers' PBXs the gateway's numbers come through.

A provider trunk carries many numbers (`numbers.trunk_id`); a customer's PBX is connected the same way.
`secret` is stored as given, not hashed: answering a provider's digest challenge needs the password
itself. It is a secret all the same: never log it, never return it from the API (SPEC T2).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, enum_values, utcnow
from gateway.storage.models.enums import (
    CallerIdFormat,
    TrunkKind,
    TrunkNumberHeader,
    TrunkTransport,
    TrunkTrust,
)

DEFAULT_SIP_PORT = 5060
DEFAULT_NUMBER_HEADERS = "request_uri,to"
DEFAULT_REGISTER_EXPIRES_S = 3600


def split_number_headers(stored: str) -> list[str]:
    """The stored comma-separated header order as a list ('' is no header at all)."""
    return [part.strip() for part in stored.split(",") if part.strip()]


def check_number_headers(value: Any) -> str:
    """`value` (a list or the comma-separated text) as stored; ValueError when a header is unknown,
    repeated or none is given."""
    parts = split_number_headers(value) if isinstance(value, str) else list(value)
    allowed = enum_values(TrunkNumberHeader)
    for part in parts:
        if part not in allowed:
            raise ValueError(f"number_headers: unknown header {part!r}; expected some of {', '.join(allowed)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"number_headers: each header at most once; got {', '.join(parts)}")
    if not parts:
        raise ValueError("number_headers: give at least one header to read the dialled number from")
    return ",".join(parts)


class Trunk(Base):
    """One trunk: where it is, how its INVITEs are trusted, how its numbers are read and written."""

    __tablename__ = "trunks"
    __table_args__ = (
        enum_check("kind", TrunkKind),
        enum_check("transport", TrunkTransport),
        enum_check("trust", TrunkTrust),
        enum_check("caller_id_format", CallerIdFormat),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    host: Mapped[str] = mapped_column(sa.String(255))
    port: Mapped[int] = mapped_column(default=DEFAULT_SIP_PORT, server_default=str(DEFAULT_SIP_PORT))
    transport: Mapped[str] = mapped_column(
        sa.String(8), default=TrunkTransport.UDP.value, server_default=TrunkTransport.UDP.value
    )
    trust: Mapped[str] = mapped_column(
        sa.String(16), default=TrunkTrust.SOURCE.value, server_default=TrunkTrust.SOURCE.value
    )
    username: Mapped[str | None] = mapped_column(sa.String(200))
    secret: Mapped[str | None] = mapped_column(sa.String(255))
    number_headers: Mapped[str] = mapped_column(
        sa.String(200), default=DEFAULT_NUMBER_HEADERS, server_default=DEFAULT_NUMBER_HEADERS
    )
    caller_id_format: Mapped[str] = mapped_column(
        sa.String(16), default=CallerIdFormat.E164_PLUS.value, server_default=CallerIdFormat.E164_PLUS.value
    )
    # Seconds asked for in an outbound REGISTER's Expires.
    register_expires: Mapped[int] = mapped_column(
        default=DEFAULT_REGISTER_EXPIRES_S, server_default=str(DEFAULT_REGISTER_EXPIRES_S)
    )
    # Regular expressions over the dialled outside number in E.164 with '+' (emergency, premium).
    deny_patterns: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        # The default repr is fine today, but a secret column must never reach a log through one.
        return f"Trunk(id={self.id!r}, name={self.name!r}, host={self.host!r}, port={self.port!r})"

    @validates("kind")
    def _check_kind(self, key: str, value: str) -> str:
        return check_choice(TrunkKind, key, value)

    @validates("transport")
    def _check_transport(self, key: str, value: str) -> str:
        return check_choice(TrunkTransport, key, value)

    @validates("trust")
    def _check_trust(self, key: str, value: str) -> str:
        return check_choice(TrunkTrust, key, value)

    @validates("caller_id_format")
    def _check_caller_id_format(self, key: str, value: str) -> str:
        return check_choice(CallerIdFormat, key, value)

    @validates("number_headers")
    def _check_number_headers(self, key: str, value: Any) -> str:
        return check_number_headers(value)
