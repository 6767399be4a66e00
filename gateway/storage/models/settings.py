"""CRM-wide settings (SPEC T3, T12, M11, O1), sources (T6), pipelines and the exception list (T8)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gateway.storage.base import Base, check_choice, enum_check
from gateway.storage.models.enums import AnyAddressCreates, CrmMode, DealCreationMode, ExceptionKind

CRM_SETTINGS_ID = 1
"""The primary key of the single CrmSettings row (seeded by the first migration)."""


class Source(Base):
    """An item's Source field (SPEC T6): the standard CALL/EMAIL/WEB/OTHER or a custom one."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    standard: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Pipeline(Base):
    """A deal pipeline; the seeded "General" one is the default (SPEC T12)."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    is_default: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class CrmSettings(Base):
    """The CRM-wide settings: one row, id = CRM_SETTINGS_ID, seeded by the first migration."""

    __tablename__ = "crm_settings"
    __table_args__ = (
        sa.CheckConstraint(f"id = {CRM_SETTINGS_ID}", name="single_row"),
        enum_check("mode", CrmMode),
        enum_check("deal_creation_mode", DealCreationMode),
        enum_check("any_address_creates", AnyAddressCreates),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False, default=CRM_SETTINGS_ID)
    mode: Mapped[str] = mapped_column(
        sa.String(16), default=CrmMode.CLASSIC.value, server_default=CrmMode.CLASSIC.value
    )
    # NULL means the default pipeline (Pipeline.is_default).
    deal_pipeline_id: Mapped[int | None] = mapped_column(sa.ForeignKey("pipelines.id", ondelete="SET NULL"))
    deal_creation_mode: Mapped[str] = mapped_column(
        sa.String(16), default=DealCreationMode.CONTACT.value, server_default=DealCreationMode.CONTACT.value
    )
    repeat_sales: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    legacy_lead_mode: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    allow_email_to_any_address: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    any_address_creates: Mapped[str] = mapped_column(
        sa.String(16), default=AnyAddressCreates.LEAD.value, server_default=AnyAddressCreates.LEAD.value
    )

    deal_pipeline: Mapped[Pipeline | None] = relationship()

    @validates("mode")
    def _check_mode(self, key: str, value: str) -> str:
        return check_choice(CrmMode, key, value)

    @validates("deal_creation_mode")
    def _check_deal_creation_mode(self, key: str, value: str) -> str:
        return check_choice(DealCreationMode, key, value)

    @validates("any_address_creates")
    def _check_any_address_creates(self, key: str, value: str) -> str:
        return check_choice(AnyAddressCreates, key, value)


class ExceptionEntry(Base):
    """A phone number or email address on the CRM exception list (SPEC T8)."""

    __tablename__ = "exception_entries"
    __table_args__ = (
        # normalized first: the call path looks entries up by the normalised value.
        sa.UniqueConstraint("normalized", "kind"),
        enum_check("kind", ExceptionKind),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    value: Mapped[str] = mapped_column(sa.String(320))
    normalized: Mapped[str] = mapped_column(sa.String(320))

    @validates("kind")
    def _check_kind(self, key: str, value: str) -> str:
        return check_choice(ExceptionKind, key, value)
