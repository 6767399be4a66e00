"""/queue-groups: the employees a number rings and how (SPEC R2), the no-answer chain (R3), and T10's
responsible (the member at position 1). Admins and number managers change them (a queue group is part
of a number's settings, T2); every employee may read them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal, NumberManager
from gateway.admin.config_change import config_changed
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import changes, get_or_404
from gateway.admin.no_answer import TARGET_FIELDS, chain_fields, check_targets, refuse_loop
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.queues import (
    DEPRECATED_STRATEGIES,
    MemberOut,
    QueueGroupCreate,
    QueueGroupOut,
    QueueGroupUpdate,
)
from gateway.storage.models import Employee, Number, QueueGroup, QueueMember

router = APIRouter(prefix="/queue-groups", tags=["queue groups"])


def group_out(group: QueueGroup) -> QueueGroupOut:
    """The API view of a queue group: members in ringing order, position 1 first."""
    members = sorted(group.members, key=lambda m: m.position)
    return QueueGroupOut(
        id=group.id, name=group.name, strategy=group.strategy, ring_time_s=group.ring_time_s,
        member_ids=[m.employee_id for m in members],
        members=[MemberOut(employee_id=m.employee_id, position=i, ring_time_s=m.ring_time_s)
                 for i, m in enumerate(members, start=1)],
        no_answer_action=group.no_answer_action, no_answer_group_id=group.no_answer_group_id,
        no_answer_employee_id=group.no_answer_employee_id, no_answer_number=group.no_answer_number,
    )


def _strategy(given: str, response: Response) -> str:
    """The R2 name of `given`; an old name still works, with a Warning header naming its successor."""
    new = DEPRECATED_STRATEGIES.get(given)
    if new is None:
        return given
    response.headers["Warning"] = f'299 - "strategy {given!r} is deprecated: it is stored as {new!r}; send {new!r}"'
    return new


async def _members(session: AsyncSession, patch: dict[str, Any]) -> list[QueueMember] | None:
    """The members a body gives (`member_ids` or `members`), positions from 1; None when it gives none."""
    if patch.get("member_ids") is not None and patch.get("members") is not None:
        raise invalid("members: give member_ids or members, not both")
    if patch.get("members") is not None:
        wanted = [(m["employee_id"], m.get("ring_time_s")) for m in patch["members"]]
    elif patch.get("member_ids") is not None:
        wanted = [(employee_id, None) for employee_id in patch["member_ids"]]
    else:
        return None
    ids = [employee_id for employee_id, _ in wanted]
    if len(set(ids)) != len(ids):
        raise invalid("member_ids: an employee may appear only once in a queue group")
    known = set(await session.scalars(select(Employee.id).where(Employee.id.in_(ids))))
    missing = [i for i in ids if i not in known]
    if missing:
        raise invalid(f"member_ids: employee(s) {', '.join(map(str, missing))} not found")
    return [QueueMember(employee_id=employee_id, position=position, ring_time_s=ring_time)
            for position, (employee_id, ring_time) in enumerate(wanted, start=1)]


async def _check_name_free(session: AsyncSession, name: str, group_id: int | None) -> None:
    other = await session.scalar(select(QueueGroup.id).where(QueueGroup.name == name))
    if other is not None and other != group_id:
        raise conflict(f"a queue group named {name!r} already exists (id {other}); choose another name")


async def _apply_chain(session: AsyncSession, group: QueueGroup, sent: dict[str, Any]) -> None:
    current = {"no_answer_action": group.no_answer_action, **{f: getattr(group, f) for f in TARGET_FIELDS}}
    for name, value in (await check_targets(session, chain_fields(current, sent))).items():
        setattr(group, name, value)


@router.get("", response_model=Page[QueueGroupOut], summary="List queue groups")
async def list_groups(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[QueueGroupOut]:
    """Every employee may read queue groups."""
    total = await session.scalar(select(func.count()).select_from(QueueGroup)) or 0
    rows = await session.scalars(
        select(QueueGroup).order_by(QueueGroup.id).limit(page.limit).offset(page.offset))
    return Page(items=[group_out(g) for g in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=QueueGroupOut, status_code=status.HTTP_201_CREATED,
             summary="Create a queue group")
async def create_group(body: QueueGroupCreate, session: SessionDep, manager: NumberManager,
                       request: Request, response: Response) -> QueueGroupOut:
    """Admins and number managers. 422 when the no-answer action lacks its target or has another's;
    409 when the no-answer chain loops."""
    data = changes(body)
    await _check_name_free(session, body.name, None)
    group = QueueGroup(name=body.name, strategy=_strategy(body.strategy, response), ring_time_s=body.ring_time_s,
                       members=await _members(session, data) or [])
    await _apply_chain(session, group, data)
    session.add(group)
    await session.flush()
    await refuse_loop(session, group)
    await session.commit()
    await session.refresh(group)
    await config_changed(request, "queue_groups")
    return group_out(group)


@router.get("/{group_id}", response_model=QueueGroupOut, summary="Read a queue group")
async def read_group(group_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> QueueGroupOut:
    """Every employee may read queue groups."""
    return group_out(await get_or_404(session, QueueGroup, group_id, "queue group"))


@router.patch("/{group_id}", response_model=QueueGroupOut, summary="Change a queue group")
async def update_group(group_id: IdPath, body: QueueGroupUpdate, session: SessionDep, manager: NumberManager,
                       request: Request, response: Response) -> QueueGroupOut:
    """Admins and number managers. `member_ids` or `members` replaces the members and their order."""
    group = await get_or_404(session, QueueGroup, group_id, "queue group")
    patch = changes(body)
    if patch.get("name") is not None:
        await _check_name_free(session, patch["name"], group.id)
        group.name = patch["name"]
    if patch.get("strategy") is not None:
        group.strategy = _strategy(patch["strategy"], response)
    if patch.get("ring_time_s") is not None:
        group.ring_time_s = patch["ring_time_s"]
    members = await _members(session, patch)
    if members is not None:
        group.members = members
    await _apply_chain(session, group, patch)
    await session.flush()
    await refuse_loop(session, group)
    await session.commit()
    await session.refresh(group)
    await config_changed(request, "queue_groups")
    return group_out(group)


async def _users_of(session: AsyncSession, group: QueueGroup) -> list[str]:
    """Who points at `group`: numbers (their calls ring it) and other groups' no-answer chains."""
    numbers = await session.execute(
        select(Number.id, Number.number).where(Number.queue_group_id == group.id).order_by(Number.id))
    chains = await session.execute(
        select(QueueGroup.id, QueueGroup.name).where(QueueGroup.no_answer_group_id == group.id,
                                                     QueueGroup.id != group.id).order_by(QueueGroup.id))
    users = [f"number {number_id} ({did}) — PATCH /numbers/{number_id} with another queue_group_id"
             for number_id, did in numbers]
    users += [f"the no-answer chain of queue group {other_id} ({name}) — PATCH /queue-groups/{other_id}"
              for other_id, name in chains]
    return users


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a queue group")
async def delete_group(group_id: IdPath, session: SessionDep, manager: NumberManager, request: Request) -> Response:
    """Admins and number managers. 409 while a number or another group's no-answer chain uses the group:
    deleting it would leave a number without anyone to ring or to make responsible of new leads (T10),
    or cut a chain (R3)."""
    group = await get_or_404(session, QueueGroup, group_id, "queue group")
    users = await _users_of(session, group)
    if users:
        raise conflict(f"queue group {group.id} ({group.name}) is used by: {'; '.join(users)}; change those first")
    await session.delete(group)
    await session.commit()
    await config_changed(request, "queue_groups")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
