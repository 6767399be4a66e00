"""A queue group's no-answer chain as the admin API configures it (SPEC R3): each action with exactly
its own target, targets that exist, and no chain of groups that comes back to where it started."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import referenced
from gateway.routing.chain import find_chain_loop
from gateway.storage.e164 import number_e164
from gateway.storage.models import Employee, NoAnswerAction, QueueGroup

TARGET_OF: dict[str, str | None] = {
    NoAnswerAction.HANGUP: None,
    NoAnswerAction.QUEUE_GROUP: "no_answer_group_id",
    NoAnswerAction.EMPLOYEE: "no_answer_employee_id",
    NoAnswerAction.OUTSIDE_NUMBER: "no_answer_number",
}
TARGET_FIELDS = ("no_answer_group_id", "no_answer_employee_id", "no_answer_number")


def chain_fields(current: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """The no-answer fields once the body's `sent` fields are applied over `current`.

    A target sent for another action than the chain's is a 422; the targets of the other actions are
    cleared; the action's own target must be set (sent now or kept from before).
    """
    action = sent.get("no_answer_action") or current.get("no_answer_action") or NoAnswerAction.HANGUP.value
    wanted = TARGET_OF[action]
    fields: dict[str, Any] = {"no_answer_action": action}
    for field in TARGET_FIELDS:
        if field != wanted:
            if sent.get(field) is not None:
                takes = wanted or "no target"
                raise invalid(f"{field}: no_answer_action {action!r} takes {takes}; remove {field} or set "
                              "no_answer_action to the action it belongs to")
            fields[field] = None
        else:
            fields[field] = sent[field] if field in sent else current.get(field)
    if wanted is not None and fields[wanted] is None:
        raise invalid(f"{wanted}: no_answer_action {action!r} needs {wanted}")
    return fields


async def check_targets(session: AsyncSession, fields: dict[str, Any]) -> dict[str, Any]:
    """422 when a target does not exist or the outside number is not one; returns the fields with the
    outside number in E.164."""
    if fields["no_answer_group_id"] is not None:
        await referenced(session, QueueGroup, fields["no_answer_group_id"], "queue group", "no_answer_group_id")
    if fields["no_answer_employee_id"] is not None:
        await referenced(session, Employee, fields["no_answer_employee_id"], "employee", "no_answer_employee_id")
    if fields["no_answer_number"] is not None:
        e164 = number_e164(fields["no_answer_number"], "")
        if e164 is None:
            raise invalid(f"no_answer_number: {fields['no_answer_number']!r} is not a valid phone number; write "
                          "it in international form, e.g. +33 6 12 34 56 78")
        fields = {**fields, "no_answer_number": e164}
    return fields


async def refuse_loop(session: AsyncSession, group: QueueGroup) -> None:
    """409 showing the loop when following no-answer chains from `group` (already flushed) comes back
    to a group already passed."""
    rows = (await session.execute(select(
        QueueGroup.id, QueueGroup.name, QueueGroup.no_answer_action, QueueGroup.no_answer_group_id))).all()
    names = {row.id: row.name for row in rows}
    next_group = {row.id: row.no_answer_group_id if row.no_answer_action == NoAnswerAction.QUEUE_GROUP else None
                  for row in rows}
    loop = find_chain_loop(group.id, next_group)
    if loop is not None:
        shown = " → ".join(f"{names.get(g, '?')} ({g})" for g in loop)
        raise conflict(f"no_answer_group_id: the no-answer chain would loop: {shown}; end the chain at an "
                       "employee, an outside number or a hang-up in one of these groups")
