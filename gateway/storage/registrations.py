"""Registrar bindings in the database: load the live ones, apply a batch of changes in one transaction.

This module knows rows, not the registrar: a binding is anything with the fields of `StoredBinding`
(wall-clock epoch seconds for `expires_at` and `registered_at`). The write-behind that decides what
to write and when lives with the registrar (`gateway.registrar.persistence`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.storage.models.registrations import (
    MAX_AOR,
    MAX_CALL_ID,
    MAX_CONTACT,
    MAX_HOST,
    MAX_TRANSPORT,
    RegistrarBinding,
)

log = logging.getLogger(__name__)

_TABLE: sa.Table = RegistrarBinding.__table__  # type: ignore[assignment]
_MAX_BIGINT = 2**63 - 1
# PostgreSQL refuses an index entry above 2704 bytes (a third of a page); the (aor, contact) key, measured
# in bytes, stays at half of that so tuple headers and a wider column later cannot reach it.
_MAX_KEY_BYTES = 2704 // 2


class BindingFields(Protocol):
    """What a binding must offer to be written (the registrar's records and `StoredBinding` both do)."""

    @property
    def aor(self) -> str: ...
    @property
    def contact(self) -> str: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def call_id(self) -> str: ...
    @property
    def cseq(self) -> int: ...
    @property
    def transport(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def registered_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """One binding as read back from the database (times in wall-clock epoch seconds)."""

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    transport: str
    host: str
    port: int
    registered_at: float


def fits(binding: BindingFields) -> bool:
    """True when the database can hold `binding` as it is (UTF-8 text within the column sizes, integer
    ranges, a primary key PostgreSQL can index).

    A binding that does not fit is kept in memory only: refusing it here keeps one odd REGISTER from
    failing every batch it is in, again and again. Sizes are measured in UTF-8 bytes, never fewer than
    the characters PostgreSQL counts, so a column never overflows.
    """
    sizes = [_utf8_size(binding.aor), _utf8_size(binding.contact), _utf8_size(binding.call_id),
             _utf8_size(binding.transport), _utf8_size(binding.host)]
    limits = [MAX_AOR, MAX_CONTACT, MAX_CALL_ID, MAX_TRANSPORT, MAX_HOST]
    return (
        all(0 <= size <= limit for size, limit in zip(sizes, limits, strict=True))
        and sizes[0] + sizes[1] <= _MAX_KEY_BYTES
        and 0 <= binding.cseq <= _MAX_BIGINT
        and 0 <= binding.port <= 65535
    )


def _utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8; -1 when it cannot be encoded (surrogates: undecodable bytes kept by
    the SIP parser), which no driver can send."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return -1


def _encodable(text: str) -> bool:
    return _utf8_size(text) >= 0


class SqlBindingBackend:
    """Registrar bindings stored in the gateway database (the `registrar_bindings` table)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def load(self, now: float) -> list[StoredBinding]:
        """Every binding still alive at wall-clock time `now`."""
        query = sa.select(_TABLE).where(_TABLE.c.expires_at > now).order_by(_TABLE.c.aor, _TABLE.c.registered_at)
        async with self.sessionmaker() as session:
            rows = (await session.execute(query)).all()
        return [
            StoredBinding(row.aor, row.contact, row.expires_at, row.call_id, row.cseq, row.source_transport,
                          row.source_host, row.source_port, row.registered_at)
            for row in rows
        ]

    async def write(
        self,
        cleared: Sequence[str],
        deleted: Sequence[tuple[str, str]],
        upserts: Sequence[BindingFields],
        purge_before: float | None = None,
    ) -> None:
        """Apply one batch in one transaction, in this order: every binding of the `cleared` AORs goes,
        then the `deleted` (aor, contact) pairs, then the `upserts` replace whatever their key held;
        finally rows expired at or before `purge_before` are dropped. All or nothing."""
        storable = [binding for binding in upserts if fits(binding)]
        if len(storable) < len(upserts):
            log.warning("registrar bindings: %d binding(s) too large for the database, kept in memory only",
                        len(upserts) - len(storable))
        # Every upserted key is deleted first, also those that do not fit: an older row must not come back.
        # A key that cannot be encoded was never stored, so there is nothing to delete (and sending it fails).
        keys = [{"a": aor, "c": contact} for aor, contact in deleted]
        keys += [{"a": binding.aor, "c": binding.contact} for binding in upserts]
        keys = [key for key in keys if _encodable(key["a"]) and _encodable(key["c"])]
        cleared = [aor for aor in cleared if _encodable(aor)]
        async with self.sessionmaker.begin() as session:
            if cleared:
                await session.execute(_TABLE.delete().where(_TABLE.c.aor.in_(cleared)))
            if keys:
                by_key = _TABLE.delete().where(_TABLE.c.aor == sa.bindparam("a"), _TABLE.c.contact == sa.bindparam("c"))
                await session.execute(by_key, keys)
            if storable:
                await session.execute(_TABLE.insert(), [_row(binding) for binding in storable])
            if purge_before is not None:
                await session.execute(_TABLE.delete().where(_TABLE.c.expires_at <= purge_before))


def _row(binding: BindingFields) -> dict[str, object]:
    return {
        "aor": binding.aor,
        "contact": binding.contact,
        "expires_at": binding.expires_at,
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "source_transport": binding.transport,
        "source_host": binding.host,
        "source_port": binding.port,
        "registered_at": binding.registered_at,
    }
