"""The built-in CRM's items: leads, contacts, companies, deals and their phones and emails.

Phones and emails of leads, contacts and companies share two tables keyed by (item_type, item_id), each
with a normalised, indexed form: finding a party by phone is one indexed query (SPEC C3, O5).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, utcnow
from gateway.storage.models.enums import DealStatus, LeadStatus, PartyItemType

if TYPE_CHECKING:
    from gateway.storage.models.employees import Employee
    from gateway.storage.models.settings import Pipeline, Source


def _party_values(owner: str, owner_type: PartyItemType, target: str) -> Any:
    """A writable one-to-many from an item to its ItemPhone/ItemEmail rows (no FK: keyed by type and id).

    Appending sets `item_type` (see `_stamp_item_type`); deleting the item deletes its rows. Remove a row
    by deleting it (`session.delete`), not by taking it out of the list.
    """
    return relationship(
        target,
        primaryjoin=f"and_(foreign({target}.item_id) == {owner}.id, {target}.item_type == '{owner_type.value}')",
        cascade="save-update, merge, delete",
        order_by=f"{target}.id",
        overlaps="phones, emails",
    )


class Lead(Base):
    """A lead (classic mode, SPEC T3/T4); `interaction_key` is the Call-ID/Message-ID that created it."""

    __tablename__ = "leads"
    __table_args__ = (enum_check("status", LeadStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    status: Mapped[str] = mapped_column(
        sa.String(16), default=LeadStatus.ACTIVE.value, server_default=LeadStatus.ACTIVE.value, index=True
    )
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id", ondelete="SET NULL"))
    responsible_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    # leads <-> contacts/companies reference each other: these two FKs are added after both tables exist.
    contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL", use_alter=True), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("companies.id", ondelete="SET NULL", use_alter=True), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    converted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    interaction_key: Mapped[str | None] = mapped_column(sa.String(255), index=True)

    source: Mapped[Source | None] = relationship()
    responsible: Mapped[Employee | None] = relationship()
    contact: Mapped[Contact | None] = relationship(foreign_keys=[contact_id], post_update=True)
    company: Mapped[Company | None] = relationship(foreign_keys=[company_id], post_update=True)
    phones: Mapped[list[ItemPhone]] = _party_values("Lead", PartyItemType.LEAD, "ItemPhone")
    emails: Mapped[list[ItemEmail]] = _party_values("Lead", PartyItemType.LEAD, "ItemEmail")

    @validates("status")
    def _check_status(self, key: str, value: str) -> str:
        return check_choice(LeadStatus, key, value)


class Company(Base):
    """A company; `lead_id` is the lead it was converted from (SPEC T13)."""

    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(300))
    responsible_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    interaction_key: Mapped[str | None] = mapped_column(sa.String(255), index=True)

    source: Mapped[Source | None] = relationship()
    responsible: Mapped[Employee | None] = relationship()
    lead: Mapped[Lead | None] = relationship(foreign_keys=[lead_id])
    contacts: Mapped[list[Contact]] = relationship(
        secondary="company_contacts", back_populates="companies", order_by="Contact.id"
    )
    phones: Mapped[list[ItemPhone]] = _party_values("Company", PartyItemType.COMPANY, "ItemPhone")
    emails: Mapped[list[ItemEmail]] = _party_values("Company", PartyItemType.COMPANY, "ItemEmail")


class Contact(Base):
    """A contact; `company_id` is the company it belongs to, `lead_id` the lead it was converted from."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(300))
    company_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    responsible_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    interaction_key: Mapped[str | None] = mapped_column(sa.String(255), index=True)

    source: Mapped[Source | None] = relationship()
    responsible: Mapped[Employee | None] = relationship()
    company: Mapped[Company | None] = relationship(foreign_keys=[company_id])
    lead: Mapped[Lead | None] = relationship(foreign_keys=[lead_id])
    companies: Mapped[list[Company]] = relationship(
        secondary="company_contacts", back_populates="contacts", order_by="Company.id"
    )
    phones: Mapped[list[ItemPhone]] = _party_values("Contact", PartyItemType.CONTACT, "ItemPhone")
    emails: Mapped[list[ItemEmail]] = _party_values("Contact", PartyItemType.CONTACT, "ItemEmail")


class CompanyContact(Base):
    """A contact linked to a company (a company lists its contacts through these rows)."""

    __tablename__ = "company_contacts"

    company_id: Mapped[int] = mapped_column(
        sa.ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Deal(Base):
    """A deal in a pipeline (SPEC T12); linked to a contact and/or a company."""

    __tablename__ = "deals"
    __table_args__ = (enum_check("status", DealStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    pipeline_id: Mapped[int] = mapped_column(sa.ForeignKey("pipelines.id", ondelete="RESTRICT"), index=True)
    stage: Mapped[str] = mapped_column(sa.String(64), default="NEW", server_default="NEW")
    status: Mapped[str] = mapped_column(
        sa.String(16), default=DealStatus.ACTIVE.value, server_default=DealStatus.ACTIVE.value, index=True
    )
    contact_id: Mapped[int | None] = mapped_column(sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    responsible_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    interaction_key: Mapped[str | None] = mapped_column(sa.String(255), index=True)

    pipeline: Mapped[Pipeline] = relationship()
    source: Mapped[Source | None] = relationship()
    responsible: Mapped[Employee | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    lead: Mapped[Lead | None] = relationship()

    @validates("status")
    def _check_status(self, key: str, value: str) -> str:
        return check_choice(DealStatus, key, value)


class ItemPhone(Base):
    """A phone of a lead, contact or company; `normalized` is E.164 (SPEC C3)."""

    __tablename__ = "item_phones"
    __table_args__ = (
        sa.Index(None, "item_type", "item_id"),
        enum_check("item_type", PartyItemType),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_type: Mapped[str] = mapped_column(sa.String(16))
    item_id: Mapped[int] = mapped_column()
    value: Mapped[str] = mapped_column(sa.String(64))
    normalized: Mapped[str] = mapped_column(sa.String(32), index=True)

    @validates("item_type")
    def _check_item_type(self, key: str, value: str) -> str:
        return check_choice(PartyItemType, key, value)


class ItemEmail(Base):
    """An email address of a lead, contact or company; `normalized` as identity.normalize_email (O5)."""

    __tablename__ = "item_emails"
    __table_args__ = (
        sa.Index(None, "item_type", "item_id"),
        enum_check("item_type", PartyItemType),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_type: Mapped[str] = mapped_column(sa.String(16))
    item_id: Mapped[int] = mapped_column()
    value: Mapped[str] = mapped_column(sa.String(320))
    normalized: Mapped[str] = mapped_column(sa.String(320), index=True)

    @validates("item_type")
    def _check_item_type(self, key: str, value: str) -> str:
        return check_choice(PartyItemType, key, value)


def _stamp_item_type(item_type: PartyItemType) -> Any:
    def stamp(owner: object, value: ItemPhone | ItemEmail, initiator: object) -> ItemPhone | ItemEmail:
        value.item_type = item_type.value
        return value

    return stamp


for _owner, _type in ((Lead, PartyItemType.LEAD), (Contact, PartyItemType.CONTACT),
                      (Company, PartyItemType.COMPANY)):
    for _collection in (_owner.phones, _owner.emails):
        event.listen(_collection, "append", _stamp_item_type(_type), retval=True)
