"""Activities (a call or an email bound to one or more items) and item timelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, utcnow
from gateway.storage.models.enums import ActivityDirection, ActivityKind, ItemType


class Activity(Base):
    """A call or email on the CRM, with a deadline, completion time and responsible (SPEC T7, T13, M6)."""

    __tablename__ = "activities"
    __table_args__ = (
        enum_check("kind", ActivityKind),
        enum_check("direction", ActivityDirection),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    direction: Mapped[str] = mapped_column(sa.String(8))
    subject: Mapped[str] = mapped_column(sa.String(500), default="")
    interaction_key: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    responsible_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)

    bindings: Mapped[list[ActivityBinding]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin",
    )

    @validates("kind")
    def _check_kind(self, key: str, value: str) -> str:
        return check_choice(ActivityKind, key, value)

    @validates("direction")
    def _check_direction(self, key: str, value: str) -> str:
        return check_choice(ActivityDirection, key, value)


class ActivityBinding(Base):
    """An activity shown on an item; one activity may be bound to several items (SPEC T13)."""

    __tablename__ = "activity_bindings"
    __table_args__ = (
        sa.Index(None, "item_type", "item_id"),
        enum_check("item_type", ItemType),
    )

    activity_id: Mapped[int] = mapped_column(
        sa.ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    item_type: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    item_id: Mapped[int] = mapped_column(primary_key=True)

    activity: Mapped[Activity] = relationship(back_populates="bindings")

    @validates("item_type")
    def _check_item_type(self, key: str, value: str) -> str:
        return check_choice(ItemType, key, value)


class TimelineEntry(Base):
    """A line on an item's timeline ("call", "new_email", "converted", "responsible_changed", ...)."""

    __tablename__ = "timeline_entries"
    __table_args__ = (
        sa.Index(None, "item_type", "item_id"),
        enum_check("item_type", ItemType),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_type: Mapped[str] = mapped_column(sa.String(16))
    item_id: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str] = mapped_column(sa.Text(), default="")
    employee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("employees.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    @validates("item_type")
    def _check_item_type(self, key: str, value: str) -> str:
        return check_choice(ItemType, key, value)
