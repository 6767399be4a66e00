"""CRM items (leads, contacts, companies, deals): create, read, convert (T13), close."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from gateway.admin.schemas.common import Name, Out, Region, RowId, ShortText, Strict

ItemType = Literal["lead", "contact", "company", "deal"]
ConversionTarget = Literal["contact", "company", "deal"]
Values = Annotated[list[ShortText], Field(max_length=20)]


class _NewItem(Strict):
    responsible_id: RowId | None = Field(default=None, description="default: the caller")
    source_id: RowId | None = None


class _NewParty(_NewItem):
    phones: Values = []
    emails: Values = []
    default_region: Region | None = Field(default=None, description="for phones in national form")


class LeadCreate(_NewParty):
    """A new active lead."""

    title: Name
    contact_id: RowId | None = None
    company_id: RowId | None = None


class ContactCreate(_NewParty):
    """A new contact, optionally belonging to a company."""

    name: Name
    company_id: RowId | None = None


class CompanyCreate(_NewParty):
    """A new company."""

    name: Name


class DealCreate(_NewItem):
    """A new active deal (its phones and emails are those of its contact/company)."""

    title: Name
    pipeline_id: RowId | None = Field(default=None, description="default: the default pipeline")
    contact_id: RowId | None = None
    company_id: RowId | None = None


class ConvertLead(Strict):
    """T13: what to make of the lead."""

    to: Annotated[list[ConversionTarget], Field(min_length=1, max_length=3)]


class ItemOut(Out):
    """One CRM item; fields that do not apply to its type are null."""

    type: ItemType
    id: int
    title: str
    status: str
    responsible_id: int | None
    source_id: int | None
    phones: list[str]
    emails: list[str]
    contact_id: int | None = None
    company_id: int | None = None
    lead_id: int | None = None
    pipeline_id: int | None = None
    stage: str | None = None
    interaction_key: str | None = None
    created_at: datetime


class ItemRefOut(Out):
    """A reference to a CRM item."""

    type: ItemType
    id: int


class ConversionOut(Out):
    """The items a lead was converted into."""

    lead: ItemRefOut
    contact: ItemRefOut | None
    company: ItemRefOut | None
    deal: ItemRefOut | None
