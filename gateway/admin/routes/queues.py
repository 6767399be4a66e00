"""/queue-groups: ordered employee groups a number rings (SPEC T10). Admins and number managers
change them (a queue group is part of a number's settings, T2); every employee may read them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal, NumberManager
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import changes, get_or_404
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.queues import QueueGroupCreate, QueueGroupOut, QueueGroupUpdate
from gateway.storage.models import Employee, Number, QueueGroup, QueueMember

router = APIRouter(prefix="/queue-groups", tags=["queue groups"])


def group_out(group: QueueGroup) -> QueueGroupOut:
    """The API view of a queue group: members in ringing order."""
    members = sorted(group.members, key=lambda m: m.position)
    return QueueGroupOut(id=group.id, name=group.name, strategy=group.strategy,
                         member_ids=[m.employee_id for m in members])


async def _members(session: AsyncSession, member_ids: list[int]) -> list[QueueMember]:
    if len(set(member_ids)) != len(member_ids):
        raise invalid("member_ids: an employee may appear only once in a queue group")
    known = set(await session.scalars(select(Employee.id).where(Employee.id.in_(member_ids))))
    missing = [i for i in member_ids if i not in known]
    if missing:
        raise invalid(f"member_ids: employee(s) {', '.join(map(str, missing))} not found")
    return [QueueMember(employee_id=eid, position=pos) for pos, eid in enumerate(member_ids)]


async def _check_name_free(session: AsyncSession, name: str, group_id: int | None) -> None:
    other = await session.scalar(select(QueueGroup.id).where(QueueGroup.name == name))
    if other is not None and other != group_id:
        raise conflict(f"a queue group named {name!r} already exists (id {other}); choose another name")


@router.get("", response_model=Page[QueueGroupOut], summary="List queue groups")
async def list_groups(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[QueueGroupOut]:
    """Every employee may read queue groups."""
    total = await session.scalar(select(func.count()).select_from(QueueGroup)) or 0
    rows = await session.scalars(
        select(QueueGroup).order_by(QueueGroup.id).limit(page.limit).offset(page.offset))
    return Page(items=[group_out(g) for g in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=QueueGroupOut, status_code=status.HTTP_201_CREATED,
             summary="Create a queue group")
async def create_group(body: QueueGroupCreate, session: SessionDep, manager: NumberManager) -> QueueGroupOut:
    """Admins and number managers."""
    await _check_name_free(session, body.name, None)
    group = QueueGroup(name=body.name, strategy=body.strategy, members=await _members(session, body.member_ids))
    session.add(group)
    await session.commit()
    await session.refresh(group)
    return group_out(group)


@router.get("/{group_id}", response_model=QueueGroupOut, summary="Read a queue group")
async def read_group(group_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> QueueGroupOut:
    """Every employee may read queue groups."""
    return group_out(await get_or_404(session, QueueGroup, group_id, "queue group"))


@router.patch("/{group_id}", response_model=QueueGroupOut, summary="Change a queue group")
async def update_group(
    group_id: IdPath, body: QueueGroupUpdate, session: SessionDep, manager: NumberManager
) -> QueueGroupOut:
    """Admins and number managers. `member_ids` replaces the members and their order."""
    group = await get_or_404(session, QueueGroup, group_id, "queue group")
    patch = changes(body)
    if patch.get("name") is not None:
        await _check_name_free(session, patch["name"], group.id)
        group.name = patch["name"]
    if patch.get("strategy") is not None:
        group.strategy = patch["strategy"]
    if patch.get("member_ids") is not None:
        group.members = await _members(session, patch["member_ids"])
    await session.commit()
    await session.refresh(group)
    return group_out(group)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a queue group")
async def delete_group(group_id: IdPath, session: SessionDep, manager: NumberManager) -> Response:
    """Admins and number managers. 409 while a number uses the group: deleting it would leave the
    number without anyone to ring or to make responsible of new leads (T10)."""
    group = await get_or_404(session, QueueGroup, group_id, "queue group")
    users = list(await session.execute(
        select(Number.id, Number.number).where(Number.queue_group_id == group.id).order_by(Number.id)))
    if users:
        named = ", ".join(f"{number_id} ({did})" for number_id, did in users)
        raise conflict(f"queue group {group.id} ({group.name}) is used by number(s) {named}; give those "
                       "numbers another queue group (PATCH /numbers/{id} with queue_group_id) first")
    await session.delete(group)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
