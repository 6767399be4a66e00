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
    """True when the database can hold `binding` as it is (column sizes, integer ranges).

    A binding that does not fit is kept in memory only: refusing it here keeps one odd REGISTER from
    failing every batch it is in, again and again.
    """
    return (
        len(binding.aor) <= MAX_AOR
        and len(binding.contact) <= MAX_CONTACT
        and len(binding.call_id) <= MAX_CALL_ID
        and len(binding.transport) <= MAX_TRANSPORT
        and len(binding.host) <= MAX_HOST
        and 0 <= binding.cseq <= _MAX_BIGINT
        and 0 <= binding.port <= 65535
    )


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
        keys = [{"a": aor, "c": contact} for aor, contact in deleted]
        keys += [{"a": binding.aor, "c": binding.contact} for binding in upserts]
        async with self.sessionmaker.begin() as session:
            if cleared:
                await session.execute(_TABLE.delete().where(_TABLE.c.aor.in_(list(cleared))))
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
