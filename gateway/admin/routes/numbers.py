"""/numbers: numbers and their CRM-integration settings (SPEC T1-T11).

T2: only administrators and employees holding the manage-numbers right may create, change or delete
a number, or see which trunk it comes through; every employee may list and read numbers' CRM settings.
A trunk's own settings and secret are under /trunks.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal, NumberManager, Principal
from gateway.admin.config_change import config_changed
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import changes, get_or_404, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.numbers import NumberCreate, NumberOut, NumberUpdate
from gateway.storage.e164 import number_e164
from gateway.storage.models import Number, QueueGroup, Source, Trunk

router = APIRouter(prefix="/numbers", tags=["numbers"])

DEFAULT_SOURCE_CODE = "CALL"
_PLAIN_FIELDS = ("kind", "number", "default_region", "name", "unknown_caller_action", "default_outbound",
                 "create_for", "route_known_to_responsible", "responsible_ring_time_s",
                 "change_responsible_on_transfer")
_NULLABLE_FIELDS = ("queue_group_id", "source_id", "trunk_id")


def number_out(row: Number, principal: Principal) -> NumberOut:
    """The API view of a number; which trunk it comes through only for admins and number managers (T2)."""
    return NumberOut(
        id=row.id, kind=row.kind, number=row.number, e164=row.e164, name=row.name, default_region=row.default_region,
        queue_group_id=row.queue_group_id,
        trunk_id=row.trunk_id if principal.may_manage_numbers else None, default_outbound=row.default_outbound,
        unknown_caller_action=row.unknown_caller_action, create_for=row.create_for,
        source_id=row.source_id, route_known_to_responsible=row.route_known_to_responsible,
        responsible_ring_time_s=row.responsible_ring_time_s,
        change_responsible_on_transfer=row.change_responsible_on_transfer,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def e164_or_422(did: str, region: str) -> str:
    """The DID in E.164, or 422 saying it is not a valid phone number in `region`."""
    e164 = number_e164(did, region)
    if e164 is None:
        raise invalid(f"number: {did!r} is not a valid phone number in region {region}; write it in "
                      "international form (+country code) or in that region's national form")
    return e164


async def _unique_e164(session: AsyncSession, did: str, region: str, number_id: int | None) -> str:
    """One DID, one number: compared in E.164 so '+33 1 84 88 00 00' and '01 84 88 00 00' clash (C3)."""
    e164 = e164_or_422(did, region)
    other = (await session.execute(select(Number.id, Number.number).where(Number.e164 == e164))).first()
    if other is not None and other.id != number_id:
        raise conflict(f"number {did!r} is already configured as number {other.id} ({other.number!r})")
    return e164


async def _default_source_id(session: AsyncSession) -> int | None:
    return await session.scalar(select(Source.id).where(Source.code == DEFAULT_SOURCE_CODE))


async def _check_references(session: AsyncSession, patch: dict) -> None:
    if patch.get("queue_group_id") is not None:
        await referenced(session, QueueGroup, patch["queue_group_id"], "queue group", "queue_group_id")
    if patch.get("source_id") is not None:
        await referenced(session, Source, patch["source_id"], "source", "source_id")
    if patch.get("trunk_id") is not None:
        await referenced(session, Trunk, patch["trunk_id"], "trunk", "trunk_id")


async def _clear_other_default_outbound(session: AsyncSession, patch: dict, number_id: int | None) -> None:
    # R4 has one default outbound number: choosing one unsets the others (before this row's own
    # change is flushed, so the unique index never sees two).
    if patch.get("default_outbound"):
        others = update(Number).where(Number.default_outbound.is_(True))
        if number_id is not None:
            others = others.where(Number.id != number_id)
        await session.execute(others.values(default_outbound=False))


@router.get("", response_model=Page[NumberOut], summary="List numbers (no secrets)")
async def list_numbers(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[NumberOut]:
    """Every employee may list numbers; trunk settings only for admins and number managers (T2)."""
    total = await session.scalar(select(func.count()).select_from(Number)) or 0
    rows = await session.scalars(select(Number).order_by(Number.id).limit(page.limit).offset(page.offset))
    return Page(items=[number_out(r, principal) for r in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=NumberOut, status_code=status.HTTP_201_CREATED, summary="Create a number")
async def create_number(
    body: NumberCreate, session: SessionDep, manager: NumberManager, request: Request
) -> NumberOut:
    """Admins and holders of the manage-numbers right (T2). 422 when `number` is not a valid phone
    number read in `default_region`; 409 when it is already configured (in any spelling)."""
    data = body.model_dump()
    data["e164"] = await _unique_e164(session, body.number, body.default_region, None)
    await _check_references(session, data)
    if data["source_id"] is None:
        data["source_id"] = await _default_source_id(session)
    await _clear_other_default_outbound(session, data, None)
    row = Number(**data)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    await config_changed(request, "numbers")
    return number_out(row, manager)


@router.get("/{number_id}", response_model=NumberOut, summary="Read a number (no secrets)")
async def read_number(number_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> NumberOut:
    """Every employee may read a number's CRM settings; trunk settings only for admins and number
    managers (T2); the trunk password never."""
    return number_out(await get_or_404(session, Number, number_id, "number"), principal)


@router.patch("/{number_id}", response_model=NumberOut, summary="Change a number's settings")
async def update_number(
    number_id: IdPath, body: NumberUpdate, session: SessionDep, manager: NumberManager, request: Request
) -> NumberOut:
    """Admins and holders of the manage-numbers right (T2). Omitted fields keep their value; a new
    `number` or `default_region` gives the number a new `e164`."""
    row = await get_or_404(session, Number, number_id, "number")
    patch = changes(body)
    await _check_references(session, patch)
    await _clear_other_default_outbound(session, patch, row.id)
    did = patch.get("number") or row.number
    region = patch.get("default_region") or row.default_region
    if "number" in patch or "default_region" in patch:
        row.e164 = await _unique_e164(session, did, region, row.id)
    for name in _NULLABLE_FIELDS:
        if name in patch:  # null removes the value
            setattr(row, name, patch[name])
    for name in _PLAIN_FIELDS:
        if patch.get(name) is not None:  # null leaves a required field unchanged
            setattr(row, name, patch[name])
    await session.commit()
    await session.refresh(row)
    await config_changed(request, "numbers")
    return number_out(row, manager)


@router.delete("/{number_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a number")
async def delete_number(
    number_id: IdPath, session: SessionDep, manager: NumberManager, request: Request
) -> Response:
    """Admins and holders of the manage-numbers right (T2). The number's calls stay in the call log."""
    row = await get_or_404(session, Number, number_id, "number")
    await session.delete(row)
    await session.commit()
    await config_changed(request, "numbers")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

