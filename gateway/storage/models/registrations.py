"""Registrar bindings kept across restarts (one row per AOR + Contact, written behind the registrar).

Times are wall-clock epoch seconds: the registrar's own clock is the event loop's monotonic clock,
which starts again from an arbitrary value after a restart, so only wall-clock times mean anything to
the next process.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.base import Base

MAX_AOR = 255
MAX_CONTACT = 1024  # the primary key must stay below PostgreSQL's btree row limit (~2700 bytes)
MAX_CALL_ID = 1024
MAX_TRANSPORT = 8
MAX_HOST = 255


class RegistrarBinding(Base):
    """One Contact bound to an AOR, as the registrar last accepted it (RFC 3261 §10.3 step 7)."""

    __tablename__ = "registrar_bindings"

    aor: Mapped[str] = mapped_column(sa.String(MAX_AOR), primary_key=True)
    contact: Mapped[str] = mapped_column(sa.String(MAX_CONTACT), primary_key=True)
    expires_at: Mapped[float] = mapped_column(sa.Double(), index=True)  # wall-clock epoch seconds
    call_id: Mapped[str] = mapped_column(sa.String(MAX_CALL_ID))
    cseq: Mapped[int] = mapped_column(sa.BigInteger())
    source_transport: Mapped[str] = mapped_column(sa.String(MAX_TRANSPORT))
    source_host: Mapped[str] = mapped_column(sa.String(MAX_HOST))
    source_port: Mapped[int] = mapped_column(sa.Integer())
    registered_at: Mapped[float] = mapped_column(sa.Double())  # wall-clock epoch seconds
