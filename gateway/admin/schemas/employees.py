"""Employees: profile, phones, emails, extension, roles and CRM item rights."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from gateway.admin.schemas.common import Name, Out, Region, RowId, ShortText, Strict, printable

ItemType = Literal["lead", "contact", "company", "deal"]
Scope = Literal["none", "own", "all"]
Extension = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,8}$"),
                      Field(description="internal extension: 2 to 8 digits", examples=["101"])]
SipSecret = Annotated[
    str, StringConstraints(min_length=8, max_length=128), AfterValidator(printable),
    Field(description="write-only: the password the employee's phones register with (user: the extension); "
                      "stored only as digest HA1s, never returned. null removes it. Changing the extension "
                      "without a new sip_secret removes it too (the HA1s include the user)"),
]
PhoneList = Annotated[list[ShortText], Field(max_length=20)]
EmailList = Annotated[list[ShortText], Field(max_length=20)]


class ItemRight(Strict):
    """What an employee may see and change of one CRM item type."""

    item_type: ItemType
    view: Scope = "own"
    edit: Scope = "own"


RightList = Annotated[list[ItemRight], Field(max_length=4)]
OutboundNumberId = Annotated[
    RowId, Field(description="SPEC R4: the number the employee's outside calls leave from (its trunk, its "
                             "caller ID); null: the default outbound number")]


class EmployeeCreate(Strict):
    """A new employee. Phones in national form are read with `default_region`."""

    name: Name
    extension: Extension | None = None
    is_admin: bool = False
    can_manage_numbers: bool = False
    active: bool = True
    phones: PhoneList = []
    emails: EmailList = []
    rights: RightList = []
    default_region: Region | None = Field(
        default=None, description="region for phones written without +country code; omit for E.164 only")
    sip_secret: SipSecret | None = None
    outbound_number_id: OutboundNumberId | None = None


class EmployeeUpdate(Strict):
    """A partial change; `phones`, `emails` and `rights`, when given, replace the whole list."""

    name: Name | None = None
    extension: Extension | None = None
    is_admin: bool | None = None
    can_manage_numbers: bool | None = None
    active: bool | None = None
    phones: PhoneList | None = None
    emails: EmailList | None = None
    rights: RightList | None = None
    default_region: Region | None = None
    sip_secret: SipSecret | None = None
    outbound_number_id: OutboundNumberId | None = None


class EmployeeOut(Out):
    """An employee as the API shows it."""

    id: int
    name: str
    extension: str | None
    is_admin: bool
    can_manage_numbers: bool
    active: bool
    phones: list[str]
    emails: list[str]
    rights: list[ItemRight]
    has_sip_secret: bool = Field(description="whether the employee's phones can register (a SIP secret is set)")
    sip_realm: str | None = Field(description="the digest realm the stored SIP secret was set for")
    outbound_number_id: int | None
    created_at: datetime
