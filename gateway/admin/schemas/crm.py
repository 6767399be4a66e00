"""CRM-wide settings, the exception list, sources and pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from gateway.admin.schemas.common import Name, Out, Region, RowId, ShortText, Strict

CrmMode = Literal["classic", "simple"]
DealCreationMode = Literal["contact", "company"]
AnyAddressCreates = Literal["lead", "contact"]
ExceptionKind = Literal["phone", "email"]


class CrmSettingsBody(Strict):
    """The whole CRM settings row (PUT replaces it): T3, T12, M11, O1."""

    mode: CrmMode
    deal_pipeline_id: RowId | None = Field(default=None, description="null: the default pipeline (T12)")
    deal_creation_mode: DealCreationMode
    repeat_sales: bool
    legacy_lead_mode: bool
    allow_email_to_any_address: bool
    any_address_creates: AnyAddressCreates


class CrmSettingsOut(Out):
    """The CRM settings as stored."""

    mode: str
    deal_pipeline_id: int | None
    deal_creation_mode: str
    repeat_sales: bool
    legacy_lead_mode: bool
    allow_email_to_any_address: bool
    any_address_creates: str


class ExceptionCreate(Strict):
    """A phone or email whose calls and mail create nothing in the CRM (T8)."""

    kind: ExceptionKind
    value: ShortText
    default_region: Region | None = Field(
        default=None, description="for a phone written without +country code")


class ExceptionOut(Out):
    """An exception list entry with its normalised form (E.164 or normalised email)."""

    id: int
    kind: str
    value: str
    normalized: str


class SourceOut(Out):
    """A lead source (T6)."""

    id: int
    code: str
    name: str
    standard: bool


SourceCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=32,
                                              pattern=r"^[A-Za-z0-9_]+$"),
                       Field(description="short unique code: letters, digits and _ (stored upper-case)",
                             examples=["FAIR"])]


class SourceCreate(Strict):
    """A custom lead source (T6)."""

    code: SourceCode
    name: Name


class SourceUpdate(Strict):
    """A partial change; a standard source keeps its code (the gateway refers to it), its name may change."""

    code: SourceCode | None = None
    name: Name | None = None


class PipelineCreate(Strict):
    """A deal pipeline (T12); `is_default: true` makes it the one default (the previous one stops being it)."""

    name: Name
    is_default: bool = False


class PipelineUpdate(Strict):
    """A partial change; `is_default: true` moves the default here. To stop being the default, make
    another pipeline the default."""

    name: Name | None = None
    is_default: bool | None = None


class PipelineOut(Out):
    """A deal pipeline (T12)."""

    id: int
    name: str
    is_default: bool


class ItemRefOut(Out):
    """A reference to one CRM item."""

    type: str
    id: int


class LinkPlanOut(Out):
    """A LinkPlan (SPEC C1): what the linking engine decides for one interaction, with its rule ids."""

    interaction_key: str
    action: str
    create: list[str]
    attach_to: list[ItemRefOut]
    responsible_id: int | None
    source_id: int | None
    pipeline_id: int | None
    record_activity: bool
    rule_ids: list[str]
    transfer_moves_responsible: bool = False
    notes: list[str] = []


class DecisionOut(Out):
    """A stored linking decision: the plan, its rule ids and their explanation, one line per rule."""

    interaction_key: str
    channel: str
    plan: LinkPlanOut
    rule_ids: list[str]
    explanation: list[str]
    created_at: datetime


class SimulateCall(Strict):
    """A call to decide without writing anything (dry run, SPEC C1)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                      Field(description="one of the gateway's numbers, in any form", examples=["+33184880000"])]
    from_: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                     Field(alias="from", description="the other party's phone number",
                           examples=["+33612345678"])]
    direction: Literal["inbound", "outbound"] = "inbound"
    employee_id: int | None = Field(
        default=None, description="for an outbound call: the employee placing it (T10: made responsible)")


class SimulatedPlanOut(LinkPlanOut):
    """The LinkPlan a call would get now, with one explanation line per rule id."""

    explanation: list[str]
