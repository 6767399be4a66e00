"""/trunks: the SIP providers and customers' PBXs numbers come through (SPEC T1).

T2: a trunk's settings are number settings, and its secret the most sensitive of them: every route
needs an administrator or the manage-numbers right, and nobody ever reads the secret back.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import NumberManager
from gateway.admin.config_change import config_changed
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import changes, get_or_404
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.trunks import TrunkCreate, TrunkOut, TrunkUpdate, credentials_problem
from gateway.storage.models import Number, Trunk
from gateway.storage.models.trunks import split_number_headers

router = APIRouter(prefix="/trunks", tags=["trunks"])

_NULLABLE_FIELDS = ("username", "secret")


def registration_status(request: Request, trunk_id: int) -> dict[str, Any] | None:
    """What the gateway's outbound registrations say about the trunk (None without them)."""
    registrations = getattr(request.app.state, "trunk_registrations", None)
    return None if registrations is None else registrations.status(trunk_id)


def trunk_out(row: Trunk, number_ids: list[int], request: Request) -> TrunkOut:
    """The API view of a trunk: `has_secret` instead of the secret."""
    return TrunkOut(
        id=row.id, name=row.name, kind=row.kind, host=row.host, port=row.port, transport=row.transport,
        trust=row.trust, username=row.username, has_secret=bool(row.secret),
        number_headers=split_number_headers(row.number_headers), caller_id_format=row.caller_id_format,
        register_expires=row.register_expires, deny_patterns=list(row.deny_patterns), enabled=row.enabled,
        number_ids=number_ids, registration=registration_status(request, row.id),
        created_at=row.created_at, updated_at=row.updated_at,
    )


async def _numbers_of(session: AsyncSession, trunk_ids: list[int]) -> dict[int, list[int]]:
    rows = await session.execute(
        select(Number.trunk_id, Number.id).where(Number.trunk_id.in_(trunk_ids)).order_by(Number.id))
    carried: dict[int, list[int]] = defaultdict(list)
    for trunk_id, number_id in rows:
        if trunk_id is not None:  # always, by the query; the column itself is nullable
            carried[trunk_id].append(number_id)
    return carried


async def _one_out(session: AsyncSession, row: Trunk, request: Request) -> TrunkOut:
    return trunk_out(row, (await _numbers_of(session, [row.id]))[row.id], request)


async def _check_name_free(session: AsyncSession, name: str, trunk_id: int | None) -> None:
    owner = await session.scalar(select(Trunk.id).where(Trunk.name == name))
    if owner is not None and owner != trunk_id:
        raise conflict(f"trunk name {name!r} is already used by trunk {owner}; choose another")


def _check_credentials(row: Trunk) -> None:
    problem = credentials_problem(row.trust, row.username, bool(row.secret))
    if problem is not None:
        raise invalid(problem)


@router.get("", response_model=Page[TrunkOut], summary="List trunks (no secrets)")
async def list_trunks(
    session: SessionDep, page: PageDep, manager: NumberManager, request: Request
) -> Page[TrunkOut]:
    """Admins and holders of the manage-numbers right (T2)."""
    total = await session.scalar(select(func.count()).select_from(Trunk)) or 0
    rows = list(await session.scalars(select(Trunk).order_by(Trunk.id).limit(page.limit).offset(page.offset)))
    carried = await _numbers_of(session, [row.id for row in rows])
    return Page(items=[trunk_out(row, carried[row.id], request) for row in rows],
                total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=TrunkOut, status_code=status.HTTP_201_CREATED, summary="Create a trunk")
async def create_trunk(body: TrunkCreate, session: SessionDep, manager: NumberManager, request: Request) -> TrunkOut:
    """Admins and holders of the manage-numbers right (T2). 409 when the name is taken; 422 when the
    trust needs credentials that are not given."""
    await _check_name_free(session, body.name, None)
    row = Trunk(**body.model_dump())
    _check_credentials(row)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    await config_changed(request, "trunks")
    return trunk_out(row, [], request)


@router.get("/{trunk_id}", response_model=TrunkOut, summary="Read a trunk and its registration (no secret)")
async def read_trunk(trunk_id: IdPath, session: SessionDep, manager: NumberManager, request: Request) -> TrunkOut:
    """Admins and holders of the manage-numbers right (T2)."""
    return await _one_out(session, await get_or_404(session, Trunk, trunk_id, "trunk"), request)


@router.patch("/{trunk_id}", response_model=TrunkOut, summary="Change a trunk")
async def update_trunk(
    trunk_id: IdPath, body: TrunkUpdate, session: SessionDep, manager: NumberManager, request: Request
) -> TrunkOut:
    """Admins and holders of the manage-numbers right (T2). Omitted fields keep their value."""
    row = await get_or_404(session, Trunk, trunk_id, "trunk")
    patch = changes(body)
    if patch.get("name") is not None:
        await _check_name_free(session, patch["name"], row.id)
    for name, value in patch.items():
        if value is not None or name in _NULLABLE_FIELDS:  # null clears username/secret, else keeps
            setattr(row, name, value)
    _check_credentials(row)
    await session.commit()
    await session.refresh(row)
    await config_changed(request, "trunks")
    return await _one_out(session, row, request)


@router.delete("/{trunk_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a trunk")
async def delete_trunk(trunk_id: IdPath, session: SessionDep, manager: NumberManager, request: Request) -> Response:
    """Admins and holders of the manage-numbers right (T2). 409 while the trunk carries numbers."""
    row = await get_or_404(session, Trunk, trunk_id, "trunk")
    carried = list(await session.execute(
        select(Number.id, Number.number).where(Number.trunk_id == row.id).order_by(Number.id)))
    if carried:
        names = ", ".join(f"{number.id} ({number.number})" for number in carried)
        raise conflict(f"trunk {row.id} carries numbers {names}: give them another trunk (PATCH /numbers/{{id}} "
                       "with trunk_id) or delete them first")
    await session.delete(row)
    await session.commit()
    await config_changed(request, "trunks")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
