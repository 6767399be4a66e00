"""Working with mail saved to the CRM (SPEC M7, M9, M10).

- M7: an item's mail lists only the messages whose every bound item the caller may view.
- M10: an incoming mail's activity is completed by hand, or by creating a new activity from the mail
  (which completes the old one); sending a reply never completes it.
- M9: a mail moves to another deal with the edit right on both deals; a mail bound to a lead and to a
  deal (the deal converted from the lead) does not move.

The rules are the pure functions :func:`move_check`; the rest reads and writes the rows, the caller
commits. Rights come from :mod:`gateway.crm_bridge.rights` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.backend import CrmBackend, ItemNotFound
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.rights import Access, Actor, can_view_all, require_right
from gateway.crm_bridge.store import BuiltinCrm, get_item
from gateway.storage.models import Activity, ActivityBinding, MailMessage


class MailActionRefused(Exception):
    """A request the rules refuse (the message says why and which rule); ``conflict`` for M9's case."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


@dataclass(frozen=True)
class ItemMail:
    """A mail on an item with its activity."""

    message: MailMessage
    activity: Activity


def bound_refs(activity: Activity) -> tuple[ItemRef, ...]:
    return tuple(sorted(ItemRef(b.item_type, b.item_id) for b in activity.bindings))


async def _responsibles(session: AsyncSession, refs: tuple[ItemRef, ...]) -> list[tuple[str, int | None]]:
    found: list[tuple[str, int | None]] = []
    for ref in refs:
        try:
            item: Any = await get_item(session, ref)
        except ItemNotFound:
            continue  # a deleted item hides nothing
        found.append((ref.type, item.responsible_id))
    return found


async def may_view(session: AsyncSession, actor: Actor, activity: Activity) -> bool:
    """M7: the actor may view every item the mail is bound to."""
    return can_view_all(actor, await _responsibles(session, bound_refs(activity)))


async def mail_of_item(session: AsyncSession, actor: Actor, ref: ItemRef) -> list[ItemMail]:
    """The item's mail, newest first, that the actor may see (M7); the item itself needs the view right."""
    item: Any = await get_item(session, ref)
    require_right(actor, ref.type, Access.VIEW, item.responsible_id)
    rows = await session.execute(
        sa.select(MailMessage, Activity)
        .join(Activity, Activity.interaction_key == MailMessage.interaction_key)
        .join(ActivityBinding, ActivityBinding.activity_id == Activity.id)
        .where(ActivityBinding.item_type == ref.type, ActivityBinding.item_id == ref.id)
        .order_by(MailMessage.arrived_at.desc(), MailMessage.id.desc())
    )
    return [ItemMail(m, a) for m, a in rows.all() if await may_view(session, actor, a)]


async def mail_activity(session: AsyncSession, actor: Actor, message_id: int) -> ItemMail:
    """A saved mail and its activity, if the actor may see it (else it does not exist for them, M7)."""
    message = await session.get(MailMessage, message_id)
    activity = None
    if message is not None:
        activity = await session.scalar(
            sa.select(Activity).where(Activity.interaction_key == message.interaction_key).order_by(Activity.id)
        )
    if message is None or activity is None or not await may_view(session, actor, activity):
        raise ItemNotFound(f"there is no mail {message_id} saved to the CRM that you may view")
    return ItemMail(message, activity)


async def _require_edit_all(session: AsyncSession, actor: Actor, refs: tuple[ItemRef, ...]) -> None:
    for item_type, responsible in await _responsibles(session, refs):
        require_right(actor, item_type, Access.EDIT, responsible)


async def complete_mail(
    session: AsyncSession, actor: Actor, message_id: int, *, now: datetime | None = None
) -> Activity:
    """M10: complete the mail's activity by hand (edit right on its items); completing twice keeps the time."""
    found = await mail_activity(session, actor, message_id)
    await _require_edit_all(session, actor, bound_refs(found.activity))
    if found.activity.completed_at is None:
        found.activity.completed_at = now or datetime.now(UTC)
    return found.activity


async def follow_up(
    session: AsyncSession, actor: Actor, message_id: int, *, subject: str, deadline: datetime | None,
    responsible_id: int | None = None, backend: CrmBackend | None = None, now: datetime | None = None,
) -> tuple[Activity, int]:
    """M10: a new activity from an incoming mail on the same items; the mail's own activity is completed.

    Returns the completed activity and the new activity's id.
    """
    found = await mail_activity(session, actor, message_id)
    if found.message.direction != "inbound":
        raise MailActionRefused("a new activity is created from an incoming mail; this one was sent (M10)")
    refs = bound_refs(found.activity)
    await _require_edit_all(session, actor, refs)
    new_id = await (backend or BuiltinCrm()).add_activity(
        session, kind="email", direction="inbound", refs=refs,
        responsible_id=responsible_id if responsible_id is not None else found.activity.responsible_id,
        subject=subject, deadline=deadline,
        details={"from_message_key": found.message.message_key, "follows_activity_id": found.activity.id},
    )
    if found.activity.completed_at is None:
        found.activity.completed_at = now or datetime.now(UTC)
    return found.activity, new_id


def move_check(bound: tuple[ItemRef, ...], target: ItemRef) -> tuple[ItemRef, ...]:
    """M9: the deals the mail leaves for ``target``; MailActionRefused says why it cannot move."""
    leads = [r for r in bound if r.type == "lead"]
    deals = [r for r in bound if r.type == "deal"]
    if leads and deals:
        raise MailActionRefused(
            f"this email is bound to lead {leads[0].id} and to deal {deals[0].id} converted from it: "
            "an email bound to both a lead and a deal cannot be moved (M9)", conflict=True)
    if not deals:
        raise MailActionRefused("this email is bound to no deal: only an email on a deal moves to another (M9)")
    if target in deals:
        raise MailActionRefused(f"this email is already on deal {target.id}")
    return tuple(deals)


async def move_mail(session: AsyncSession, actor: Actor, message_id: int, deal_id: int) -> Activity:
    """M9: move the mail's activity from its deal to ``deal_id``; edit right on both deals."""
    found = await mail_activity(session, actor, message_id)
    target = ItemRef("deal", deal_id)
    leaving = move_check(bound_refs(found.activity), target)
    await _require_edit_all(session, actor, (*leaving, target))
    for binding in list(found.activity.bindings):
        if ItemRef(binding.item_type, binding.item_id) in leaving:
            await session.delete(binding)
    await session.flush()
    session.add(ActivityBinding(activity_id=found.activity.id, item_type="deal", item_id=deal_id))
    await session.flush()
    await session.refresh(found.activity, ["bindings"])
    return found.activity
