"""The one SQLAlchemy metadata of the gateway, its declarative base and shared column helpers.

Every table lives on `Base.metadata`. The naming convention gives every index and constraint a
deterministic name, so Alembic migrations are stable on SQLite (batch mode recreates tables by name)
and on PostgreSQL alike.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of every gateway table (`await obj.awaitable_attrs.rel` loads lazily)."""

    metadata = metadata


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores `timestamptz`; SQLite has no zone, so values are converted to UTC before
    they are written and the zone is put back when they are read. Naive datetimes are refused:
    guessing their zone would silently shift times.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime (e.g. UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_values(choices: type[enum.StrEnum]) -> tuple[str, ...]:
    """The stored string values of a StrEnum, in declaration order."""
    return tuple(member.value for member in choices)


def enum_check(column: str, choices: type[enum.StrEnum], *, nullable: bool = False) -> sa.CheckConstraint:
    """A CHECK constraint (named after the column) limiting `column` to the values of `choices`."""
    allowed = ", ".join(f"'{value}'" for value in enum_values(choices))
    condition = f"{column} IN ({allowed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return sa.CheckConstraint(condition, name=column)


def check_choice(choices: type[enum.StrEnum], field: str, value: Any, *, nullable: bool = False) -> Any:
    """Validate `value` against a StrEnum in Python, before the database's CHECK would refuse it.

    Returns the plain string value; raises ValueError naming the field and the allowed values.
    """
    if value is None and nullable:
        return None
    allowed: Iterable[str] = enum_values(choices)
    if isinstance(value, str) and value in allowed:
        return str(value)
    raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
