"""Employees: profile phones and emails (SPEC T9, M4), rights per item type, admin API tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, utcnow
from gateway.storage.models.enums import ItemType, RightLevel


class Employee(Base):
    """A person who takes calls and owns CRM items; `extension` is their internal SIP number and the
    user name their phones register with.

    The SIP secret itself is never stored: only its digest HA1s, H(extension:realm:secret) in MD5 and
    SHA-256 (hex), with the realm they were computed for. They are secrets too: never log or return them.
    """

    __tablename__ = "employees"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    extension: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    can_manage_numbers: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    sip_realm: Mapped[str | None] = mapped_column(sa.String(255))
    sip_ha1_md5: Mapped[str | None] = mapped_column(sa.String(32))
    sip_ha1_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    # SPEC R4: the number their outside calls leave from (None: the default outbound number).
    # use_alter: employees and numbers refer to each other through queue groups, a cycle to create.
    outbound_number_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("numbers.id", ondelete="SET NULL", use_alter=True), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    # Small collections needed whenever an employee is shown or checked: loaded eagerly so async
    # code never trips over a lazy load.
    phones: Mapped[list[EmployeePhone]] = relationship(
        back_populates="employee", cascade="all, delete-orphan", lazy="selectin",
        order_by="EmployeePhone.id",
    )
    emails: Mapped[list[EmployeeEmail]] = relationship(
        back_populates="employee", cascade="all, delete-orphan", lazy="selectin",
        order_by="EmployeeEmail.id",
    )
    rights: Mapped[list[EmployeeRight]] = relationship(
        back_populates="employee", cascade="all, delete-orphan", lazy="selectin",
        order_by="EmployeeRight.item_type",
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="employee", cascade="all, delete-orphan", passive_deletes=True
    )


class EmployeePhone(Base):
    """A phone number on an employee profile; `normalized` is E.164."""

    __tablename__ = "employee_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(sa.ForeignKey("employees.id", ondelete="CASCADE"), index=True)
    value: Mapped[str] = mapped_column(sa.String(64))
    normalized: Mapped[str] = mapped_column(sa.String(32), index=True)

    employee: Mapped[Employee] = relationship(back_populates="phones")


class EmployeeEmail(Base):
    """An email address on an employee profile; `normalized` as identity.normalize_email."""

    __tablename__ = "employee_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(sa.ForeignKey("employees.id", ondelete="CASCADE"), index=True)
    value: Mapped[str] = mapped_column(sa.String(320))
    normalized: Mapped[str] = mapped_column(sa.String(320), index=True)

    employee: Mapped[Employee] = relationship(back_populates="emails")


class EmployeeRight(Base):
    """An employee's view and edit rights on one CRM item type (none | own | all)."""

    __tablename__ = "employee_rights"
    __table_args__ = (
        enum_check("item_type", ItemType),
        enum_check("view", RightLevel),
        enum_check("edit", RightLevel),
    )

    employee_id: Mapped[int] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True
    )
    item_type: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    view: Mapped[str] = mapped_column(sa.String(8))
    edit: Mapped[str] = mapped_column(sa.String(8))

    employee: Mapped[Employee] = relationship(back_populates="rights")

    @validates("item_type")
    def _check_item_type(self, key: str, value: str) -> str:
        return check_choice(ItemType, key, value)

    @validates("view", "edit")
    def _check_level(self, key: str, value: str) -> str:
        return check_choice(RightLevel, key, value)


class ApiToken(Base):
    """A bearer token of the admin API. Only its SHA-256 (hex) is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(sa.ForeignKey("employees.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    employee: Mapped[Employee] = relationship(back_populates="tokens")
