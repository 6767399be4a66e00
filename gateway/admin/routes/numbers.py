"""/numbers: numbers and their CRM-integration settings (SPEC T1-T11).

T2: only administrators and employees holding the manage-numbers right may create, change or delete
a number, or see its trunk settings; every employee may list and read numbers' CRM settings, and
nobody ever reads a trunk password back.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal, NumberManager, Principal
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict
from gateway.admin.lookup import changes, get_or_404, phone_or_422, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.numbers import NumberCreate, NumberOut, NumberUpdate
from gateway.crm_bridge import identity
from gateway.storage.models import Number, QueueGroup, Source

router = APIRouter(prefix="/numbers", tags=["numbers"])

DEFAULT_SOURCE_CODE = "CALL"
_PLAIN_FIELDS = ("kind", "number", "default_region", "name", "trunk_port", "unknown_caller_action",
                 "create_for", "route_known_to_responsible", "change_responsible_on_transfer")
_NULLABLE_FIELDS = ("queue_group_id", "source_id", "trunk_host", "trunk_username", "trunk_password")


def number_out(row: Number, principal: Principal) -> NumberOut:
    """The API view of a number: never the trunk password (a flag says whether one is set); the trunk
    settings (host, port, username, that flag) only for admins and number managers (T2)."""
    trunk = principal.may_manage_numbers
    return NumberOut(
        id=row.id, kind=row.kind, number=row.number, name=row.name, default_region=row.default_region,
        queue_group_id=row.queue_group_id,
        trunk_host=row.trunk_host if trunk else None, trunk_port=row.trunk_port if trunk else None,
        trunk_username=row.trunk_username if trunk else None,
        has_trunk_password=bool(row.trunk_password) if trunk else None,
        unknown_caller_action=row.unknown_caller_action, create_for=row.create_for,
        source_id=row.source_id, route_known_to_responsible=row.route_known_to_responsible,
        change_responsible_on_transfer=row.change_responsible_on_transfer,
        created_at=row.created_at, updated_at=row.updated_at,
    )


async def _check_unique(session: AsyncSession, did: str, region: str, number_id: int | None) -> None:
    """One DID, one number: compared in E.164 so '+33 1 84 88 00 00' and '01 84 88 00 00' clash (C3)."""
    wanted = phone_or_422(did, region, "number")
    rows = await session.execute(select(Number.id, Number.number, Number.default_region))
    for other_id, other, other_region in rows:
        if other_id != number_id and identity.normalize_phone(other, other_region) == wanted:
            raise conflict(f"number {did!r} is already configured as number {other_id} ({other!r})")


async def _default_source_id(session: AsyncSession) -> int | None:
    return await session.scalar(select(Source.id).where(Source.code == DEFAULT_SOURCE_CODE))


async def _check_references(session: AsyncSession, patch: dict) -> None:
    if patch.get("queue_group_id") is not None:
        await referenced(session, QueueGroup, patch["queue_group_id"], "queue group", "queue_group_id")
    if patch.get("source_id") is not None:
        await referenced(session, Source, patch["source_id"], "source", "source_id")


@router.get("", response_model=Page[NumberOut], summary="List numbers (no secrets)")
async def list_numbers(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[NumberOut]:
    """Every employee may list numbers; trunk settings only for admins and number managers (T2)."""
    total = await session.scalar(select(func.count()).select_from(Number)) or 0
    rows = await session.scalars(select(Number).order_by(Number.id).limit(page.limit).offset(page.offset))
    return Page(items=[number_out(r, principal) for r in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=NumberOut, status_code=status.HTTP_201_CREATED, summary="Create a number")
async def create_number(body: NumberCreate, session: SessionDep, manager: NumberManager) -> NumberOut:
    """Admins and holders of the manage-numbers right (T2)."""
    data = body.model_dump()
    await _check_unique(session, body.number, body.default_region, None)
    await _check_references(session, data)
    if data["source_id"] is None:
        data["source_id"] = await _default_source_id(session)
    row = Number(**data)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return number_out(row, manager)


@router.get("/{number_id}", response_model=NumberOut, summary="Read a number (no secrets)")
async def read_number(number_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> NumberOut:
    """Every employee may read a number's CRM settings; trunk settings only for admins and number
    managers (T2); the trunk password never."""
    return number_out(await get_or_404(session, Number, number_id, "number"), principal)


@router.patch("/{number_id}", response_model=NumberOut, summary="Change a number's settings")
async def update_number(
    number_id: IdPath, body: NumberUpdate, session: SessionDep, manager: NumberManager
) -> NumberOut:
    """Admins and holders of the manage-numbers right (T2). Omitted fields keep their value."""
    row = await get_or_404(session, Number, number_id, "number")
    patch = changes(body)
    await _check_references(session, patch)
    did = patch.get("number") or row.number
    region = patch.get("default_region") or row.default_region
    if "number" in patch or "default_region" in patch:
        await _check_unique(session, did, region, row.id)
    for name in _NULLABLE_FIELDS:
        if name in patch:  # null removes the value
            setattr(row, name, patch[name])
    for name in _PLAIN_FIELDS:
        if patch.get(name) is not None:  # null leaves a required field unchanged
            setattr(row, name, patch[name])
    await session.commit()
    await session.refresh(row)
    return number_out(row, manager)


@router.delete("/{number_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a number")
async def delete_number(number_id: IdPath, session: SessionDep, manager: NumberManager) -> Response:
    """Admins and holders of the manage-numbers right (T2)."""
    row = await get_or_404(session, Number, number_id, "number")
    await session.delete(row)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

