"""Numbers (rented DIDs and SIP PBX numbers) with their CRM-integration settings (SPEC T1-T11).

A number names the trunk that delivers it (`trunk_id`, see /trunks); the trunk's settings and secret
live there. The per-number `trunk_*` fields of earlier versions are refused with what to send instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from gateway.admin.schemas.common import Name, Out, Region, RingTime, RowId, Strict

NumberKind = Literal["rented", "sip_pbx"]
UnknownCallerAction = Literal["auto_lead", "offer_in_card"]
CreateFor = Literal["incoming", "outgoing", "all"]
Did = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32,
                                       pattern=r"^\+?[0-9 ().\-]+$"),
                Field(description="the DID as written by the admin; must be a valid phone number read in "
                                  "default_region (its E.164 form is what calls are matched by)",
                      examples=["+33 1 84 88 00 00"])]
TrunkId = Annotated[RowId, Field(description="the trunk that delivers the number and carries its outbound "
                                             "calls (see /trunks)")]
DefaultOutbound = Annotated[bool, Field(description="SPEC R4: employees without an outbound number of their own "
                                                    "call out from this one; setting it clears it on the others")]

#: Fields numbers had before trunks were their own resource, and where each went.
MOVED_FIELDS = {
    "trunk_host": "host", "trunk_port": "port", "trunk_username": "username", "trunk_password": "secret",
}


class _NoMovedFields(Strict):
    @model_validator(mode="before")
    @classmethod
    def _refuse_moved_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old in MOVED_FIELDS:
                if old in data:
                    raise ValueError(f"{old} moved to trunks (as {MOVED_FIELDS[old]}): create the trunk with "
                                     "POST /trunks and set trunk_id")
        return data


class NumberCreate(_NoMovedFields):
    """A number to create, with every CRM-integration setting (defaults: T4a, T5 incoming, ...)."""

    kind: NumberKind
    number: Did
    name: Name
    default_region: Region
    queue_group_id: RowId | None = None
    trunk_id: TrunkId | None = None
    default_outbound: DefaultOutbound = False
    unknown_caller_action: UnknownCallerAction = "auto_lead"
    create_for: CreateFor = "incoming"
    source_id: RowId | None = Field(default=None, description="lead source (T6); default: CALL")
    route_known_to_responsible: bool = False
    responsible_ring_time_s: RingTime = Field(
        default=20, description="R1/T7: how long a known caller's responsible rings alone before the queue group")
    change_responsible_on_transfer: bool = False


class NumberUpdate(_NoMovedFields):
    """A partial change. `trunk_id: null` detaches the number from its trunk."""

    kind: NumberKind | None = None
    number: Did | None = None
    name: Name | None = None
    default_region: Region | None = None
    queue_group_id: RowId | None = None
    trunk_id: TrunkId | None = None
    default_outbound: DefaultOutbound | None = None
    unknown_caller_action: UnknownCallerAction | None = None
    create_for: CreateFor | None = None
    source_id: RowId | None = None
    route_known_to_responsible: bool | None = None
    responsible_ring_time_s: RingTime | None = None
    change_responsible_on_transfer: bool | None = None


class NumberOut(Out):
    """A number as the caller may see it; `trunk_id` is null for employees who may not manage numbers
    (T2: the trunk is number configuration they may not see)."""

    id: int
    kind: str
    number: str
    e164: str = Field(description="the number in E.164, computed from number and default_region")
    name: str
    default_region: str
    queue_group_id: int | None
    trunk_id: int | None
    default_outbound: bool
    unknown_caller_action: str
    create_for: str
    source_id: int | None
    route_known_to_responsible: bool
    responsible_ring_time_s: int
    change_responsible_on_transfer: bool
    created_at: datetime
    updated_at: datetime | None
