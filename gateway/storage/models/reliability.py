"""Durable bookkeeping of CRM writes: the outbox, idempotency keys and stored decisions (SPEC C1, C2, C4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, utcnow
from gateway.storage.models.enums import OutboxStatus


class IdempotencyKey(Base):
    """A write that has been applied, e.g. "call:<Call-ID>:create_lead", with its result (SPEC C2)."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(sa.String(400), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())


class OutboxEntry(Base):
    """One CRM write waiting to be applied, in `seq` order per interaction key (SPEC C4)."""

    __tablename__ = "outbox_entries"
    __table_args__ = (
        sa.UniqueConstraint("interaction_key", "seq"),
        # The worker polls for due pending entries.
        sa.Index(None, "status", "next_attempt_at"),
        enum_check("status", OutboxStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_key: Mapped[str] = mapped_column(sa.String(255))
    seq: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
    status: Mapped[str] = mapped_column(
        sa.String(16), default=OutboxStatus.PENDING.value, server_default=OutboxStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.Text())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    @validates("status")
    def _check_status(self, key: str, value: str) -> str:
        return check_choice(OutboxStatus, key, value)


class Decision(Base):
    """The LinkPlan the linking engine made for an interaction (`plan` is LinkPlan.to_dict())."""

    __tablename__ = "decisions"

    interaction_key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(16))
    plan: Mapped[dict[str, Any]] = mapped_column(sa.JSON())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
