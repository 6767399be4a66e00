"""Numbers (SPEC T1) with their CRM-integration settings (T4-T7, T10, T11) and queue groups."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, utcnow
from gateway.storage.e164 import number_e164
from gateway.storage.models.enums import (
    CreateFor,
    NoAnswerAction,
    NumberKind,
    QueueStrategy,
    UnknownCallerAction,
)

if TYPE_CHECKING:
    from gateway.storage.models.employees import Employee
    from gateway.storage.models.settings import Source
    from gateway.storage.models.trunks import Trunk


DEFAULT_RING_TIME_S = 20
"""SPEC R1/R2: how long one offer rings when nothing else is configured."""


class QueueGroup(Base):
    """A group of employees a number's calls ring (SPEC R2; T10: position 1 is responsible) and what
    happens when none of them answers (R3: the no-answer chain, one target per action)."""

    __tablename__ = "queue_groups"
    __table_args__ = (
        enum_check("strategy", QueueStrategy),
        enum_check("no_answer_action", NoAnswerAction),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    strategy: Mapped[str] = mapped_column(
        sa.String(32), default=QueueStrategy.IN_ORDER.value, server_default=QueueStrategy.IN_ORDER.value
    )
    ring_time_s: Mapped[int] = mapped_column(default=DEFAULT_RING_TIME_S, server_default=str(DEFAULT_RING_TIME_S))
    no_answer_action: Mapped[str] = mapped_column(
        sa.String(16), default=NoAnswerAction.HANGUP.value, server_default=NoAnswerAction.HANGUP.value
    )
    no_answer_group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("queue_groups.id", ondelete="SET NULL"), index=True
    )
    no_answer_employee_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    no_answer_number: Mapped[str | None] = mapped_column(sa.String(64))

    members: Mapped[list[QueueMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", lazy="selectin",
        order_by="QueueMember.position",
    )

    @validates("strategy")
    def _check_strategy(self, key: str, value: str) -> str:
        return check_choice(QueueStrategy, key, value)

    @validates("no_answer_action")
    def _check_no_answer_action(self, key: str, value: str) -> str:
        return check_choice(NoAnswerAction, key, value)


class QueueMember(Base):
    """An employee's place in a queue group (lower `position` rings first)."""

    __tablename__ = "queue_members"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("queue_groups.id", ondelete="CASCADE"), primary_key=True
    )
    employee_id: Mapped[int] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(default=0, server_default="0")
    # NULL: the group's ring_time_s.
    ring_time_s: Mapped[int | None] = mapped_column()

    group: Mapped[QueueGroup] = relationship(back_populates="members")
    employee: Mapped[Employee] = relationship()


def _e164_on_insert(context: sa.engine.interfaces.ExecutionContext) -> str | None:
    params = context.get_current_parameters()  # type: ignore[attr-defined]
    return number_e164(params["number"], params["default_region"])


class Number(Base):
    """A DID the gateway answers: the trunk that delivers it and its per-number CRM-integration settings.

    A trunk carrying numbers cannot be deleted. `default_outbound`: the number employees without an
    outbound number of their own call out from (SPEC R4); at most one number has it (a partial unique
    index holds that). `e164` is `number` read in `default_region`: the call path finds a dialled number by it. When not
    given it is computed on insert; whoever changes `number` or `default_region` sets it again.
    """

    __tablename__ = "numbers"
    __table_args__ = (
        sa.Index("ix_numbers_default_outbound", "default_outbound", unique=True,
                 sqlite_where=sa.text("default_outbound"), postgresql_where=sa.text("default_outbound")),
        enum_check("kind", NumberKind),
        enum_check("unknown_caller_action", UnknownCallerAction),
        enum_check("create_for", CreateFor),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(
        sa.String(16), default=NumberKind.RENTED.value, server_default=NumberKind.RENTED.value
    )
    number: Mapped[str] = mapped_column(sa.String(64), unique=True)
    e164: Mapped[str] = mapped_column(sa.String(32), unique=True, index=True, default=_e164_on_insert)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    default_region: Mapped[str] = mapped_column(sa.String(2))
    queue_group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("queue_groups.id", ondelete="SET NULL"), index=True
    )
    trunk_id: Mapped[int | None] = mapped_column(sa.ForeignKey("trunks.id"), index=True)
    default_outbound: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    unknown_caller_action: Mapped[str] = mapped_column(
        sa.String(16), default=UnknownCallerAction.AUTO_LEAD.value,
        server_default=UnknownCallerAction.AUTO_LEAD.value,
    )
    create_for: Mapped[str] = mapped_column(
        sa.String(16), default=CreateFor.ALL.value, server_default=CreateFor.ALL.value
    )
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id", ondelete="SET NULL"), index=True)
    route_known_to_responsible: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # SPEC R1/T7: how long the known caller's responsible rings alone before the queue group.
    responsible_ring_time_s: Mapped[int] = mapped_column(
        default=DEFAULT_RING_TIME_S, server_default=str(DEFAULT_RING_TIME_S)
    )
    change_responsible_on_transfer: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    queue_group: Mapped[QueueGroup | None] = relationship()
    trunk: Mapped[Trunk | None] = relationship()
    source: Mapped[Source | None] = relationship()

    @validates("kind")
    def _check_kind(self, key: str, value: str) -> str:
        return check_choice(NumberKind, key, value)

    @validates("unknown_caller_action")
    def _check_unknown_caller_action(self, key: str, value: str) -> str:
        return check_choice(UnknownCallerAction, key, value)

    @validates("create_for")
    def _check_create_for(self, key: str, value: str) -> str:
        return check_choice(CreateFor, key, value)

    @validates("default_region")
    def _check_region(self, key: str, value: str) -> str:
        if not (isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()):
            raise ValueError(f"{key} must be an ISO 3166 alpha-2 region such as 'FR'; got {value!r}")
        return value.upper()
