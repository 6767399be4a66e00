"""Numbers (rented DIDs and SIP PBX trunks) with their CRM-integration settings (SPEC T1-T11).

`trunk_password` is write-only: it is accepted on create/update and never serialised back; responses
carry `has_trunk_password` instead (T2, security by default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from gateway.admin.schemas.common import Name, Out, Region, RingTime, RowId, Secret, Strict

NumberKind = Literal["rented", "sip_pbx"]
UnknownCallerAction = Literal["auto_lead", "offer_in_card"]
CreateFor = Literal["incoming", "outgoing", "all"]
Did = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32,
                                       pattern=r"^\+?[0-9 ().\-]+$"),
                Field(description="the DID as written by the admin; must be a valid phone number read in "
                                  "default_region (its E.164 form is what calls are matched by)",
                      examples=["+33 1 84 88 00 00"])]
Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255,
                                        pattern=r"^[A-Za-z0-9.\-:\[\]]+$"),
                 Field(description="trunk host name or IP address", examples=["sip.provider.example"])]
Port = Annotated[int, Field(ge=1, le=65535)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class NumberCreate(Strict):
    """A number to create, with every CRM-integration setting (defaults: T4a, T5 incoming, ...)."""

    kind: NumberKind
    number: Did
    name: Name
    default_region: Region
    queue_group_id: RowId | None = None
    trunk_host: Host | None = None
    trunk_port: Port = 5060
    trunk_username: Username | None = None
    trunk_password: Secret | None = Field(default=None, description="write-only; never returned")
    unknown_caller_action: UnknownCallerAction = "auto_lead"
    create_for: CreateFor = "incoming"
    source_id: RowId | None = Field(default=None, description="lead source (T6); default: CALL")
    route_known_to_responsible: bool = False
    responsible_ring_time_s: RingTime = Field(
        default=20, description="R1/T7: how long a known caller's responsible rings alone before the queue group")
    change_responsible_on_transfer: bool = False


class NumberUpdate(Strict):
    """A partial change. `trunk_password: null` removes the stored password."""

    kind: NumberKind | None = None
    number: Did | None = None
    name: Name | None = None
    default_region: Region | None = None
    queue_group_id: RowId | None = None
    trunk_host: Host | None = None
    trunk_port: Port | None = None
    trunk_username: Username | None = None
    trunk_password: Secret | None = Field(default=None, description="write-only; null clears it")
    unknown_caller_action: UnknownCallerAction | None = None
    create_for: CreateFor | None = None
    source_id: RowId | None = None
    route_known_to_responsible: bool | None = None
    responsible_ring_time_s: RingTime | None = None
    change_responsible_on_transfer: bool | None = None


class NumberOut(Out):
    """A number as the caller may see it: no secret, only whether one is set; the trunk settings
    (`trunk_*`, `has_trunk_password`) are null for employees who may not manage numbers (T2)."""

    id: int
    kind: str
    number: str
    e164: str = Field(description="the number in E.164, computed from number and default_region")
    name: str
    default_region: str
    queue_group_id: int | None
    trunk_host: str | None
    trunk_port: int | None
    trunk_username: str | None
    has_trunk_password: bool | None
    unknown_caller_action: str
    create_for: str
    source_id: int | None
    route_known_to_responsible: bool
    responsible_ring_time_s: int
    change_responsible_on_transfer: bool
    created_at: datetime
    updated_at: datetime | None
