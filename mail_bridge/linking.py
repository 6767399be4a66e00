"""One message into the CRM: store it once, gather its Interaction, decide through the shared engine.

Everything the CRM rules need is an input of :func:`gateway.crm_bridge.linking.decide`; this module only
reads the database to build those inputs (the mailbox's settings, the party, the thread's items) and
stores the message. The decision, its storage and the CRM writes go through
:mod:`gateway.crm_bridge.interactions` and the outbox, as for calls. No rule is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.identity import normalize_email
from gateway.crm_bridge.interactions import (
    crm_mode_settings,
    decide_and_record,
    inactive_employees,
    interaction_key,
    stored_plan,
)
from gateway.crm_bridge.linking import (
    Channel,
    ChannelSettings,
    Direction,
    Interaction,
    ItemRef,
    KnownItem,
    LinkPlan,
    PartyKnowledge,
)
from gateway.crm_bridge.service import PlanContext
from gateway.crm_bridge.store import BuiltinCrm, get_item
from gateway.storage.models import (
    Activity,
    ActivityBinding,
    Deal,
    Lead,
    Mailbox,
    MailMessage,
    MailThreadRef,
    QueueMember,
)
from mail_bridge.message import ParsedMail, parse_message


@dataclass(frozen=True)
class SavedMail:
    """A message as stored, and the plan the engine gave it (None when it was already stored)."""

    message_id: int
    message_key: str
    interaction_key: str
    plan: LinkPlan | None
    new: bool


def in_turn(members: tuple[int, ...], last_assigned: int | None) -> tuple[int, ...]:
    """M13: the queue in turn order, the member after the one who got the last item first.

    When that employee left the queue (or nobody got an item yet) the turn starts at position 1.
    """
    if last_assigned not in members:
        return members
    after = members.index(last_assigned) + 1
    return members[after:] + members[:after]


async def queue_members(session: AsyncSession, mailbox: Mailbox) -> tuple[int, ...]:
    """The mailbox's distribution queue in position order."""
    if mailbox.queue_group_id is None:
        return ()
    rows = await session.scalars(
        sa.select(QueueMember.employee_id)
        .where(QueueMember.group_id == mailbox.queue_group_id)
        .order_by(QueueMember.position, QueueMember.employee_id)
    )
    return tuple(rows.all())


async def mailbox_settings(session: AsyncSession, mailbox: Mailbox) -> ChannelSettings:
    """The mailbox's CRM-integration settings as the engine reads them (M1, M2, M8, M13)."""
    members = await queue_members(session, mailbox)
    return ChannelSettings(
        create_items=mailbox.create_items_for_new,
        source_id=mailbox.source_id,
        queue_member_ids=in_turn(members, mailbox.last_assigned_id),
        route_known_to_responsible=mailbox.route_known_to_responsible,
        integration=mailbox.crm_integration,
        spam_folder=mailbox.spam_folder,
    )


def direction_of(parsed: ParsedMail, mailbox_address: str) -> Direction:
    """Outbound when the mailbox itself sent it (its Sent folder, a copy of our own mail)."""
    own = normalize_email(mailbox_address)
    return Direction.OUTBOUND if parsed.from_address is not None and parsed.from_address == own else Direction.INBOUND


async def party_of(
    session: AsyncSession, backend: CrmBackend, parsed: ParsedMail, direction: Direction
) -> tuple[str | None, PartyKnowledge]:
    """The client side of the mail and what the CRM knows of it.

    Inbound: the sender. Outbound: the first recipient who is not an employee; when every recipient is
    an employee the party is flagged as one (M4: such a mail is never saved).
    """
    if direction == Direction.INBOUND:
        if parsed.from_address is None:
            return None, PartyKnowledge()
        return parsed.from_address, await backend.find_party(session, email=parsed.from_address)
    first_employee: tuple[str, PartyKnowledge] | None = None
    for address in parsed.recipients:
        knowledge = await backend.find_party(session, email=address)
        if not knowledge.is_employee:
            return address, knowledge
        first_employee = first_employee or (address, knowledge)
    return first_employee if first_employee else (None, PartyKnowledge())


async def thread_items(session: AsyncSession, refs: tuple[str, ...]) -> tuple[KnownItem, ...]:
    """The items the messages this one answers are bound to (M12): their activities' bindings, else the
    attachments their stored plans named (the outbox may not have written the activity yet)."""
    if not refs:
        return ()
    keys = (await session.scalars(sa.select(MailMessage.interaction_key).where(MailMessage.message_key.in_(refs)))).all()
    if not keys:
        return ()
    bound = await session.execute(
        sa.select(Activity.interaction_key, ActivityBinding.item_type, ActivityBinding.item_id)
        .join(Activity, Activity.id == ActivityBinding.activity_id)
        .where(Activity.interaction_key.in_(keys))
    )
    by_key: dict[str, set[ItemRef]] = {}
    for key, item_type, item_id in bound.all():
        by_key.setdefault(key, set()).add(ItemRef(item_type, int(item_id)))
    found: set[ItemRef] = set()
    for key in keys:
        # The activity's bindings win: a mail moved to another deal (M9) threads its replies there.
        plan = None if key in by_key else await stored_plan(session, key)
        found.update(by_key.get(key, plan.attach_to if plan is not None else ()))
    return tuple([await _known(session, ref) for ref in sorted(found)])


async def _known(session: AsyncSession, ref: ItemRef) -> KnownItem:
    item: Any = await get_item(session, ref)
    status = item.status if isinstance(item, Lead | Deal) else "active"
    return KnownItem(ref=ref, responsible_id=item.responsible_id, status=status)


async def store_message(
    session: AsyncSession, parsed: ParsedMail, raw: bytes, *, mailbox: Mailbox | None, folder: str | None,
    uid: int | None, direction: Direction, key: str, now: datetime,
) -> MailMessage:
    """Store one parsed message and its thread references (the caller checked it is not stored yet)."""
    row = MailMessage(
        message_key=parsed.message_key,
        message_id=parsed.message_id,
        thread_key=parsed.thread_key,
        in_reply_to=parsed.in_reply_to,
        mailbox_id=mailbox.id if mailbox else None,
        folder=folder,
        uid=uid,
        direction=direction.value,
        from_address=parsed.from_address,
        from_name=(parsed.from_name or "")[:300] or None,
        to_addresses=list(parsed.to),
        cc_addresses=list(parsed.cc),
        subject=parsed.subject,
        received_at=parsed.received_at,
        received_zone=parsed.received_zone,
        arrived_at=now,
        interaction_key=key,
        defects=list(parsed.defects),
        size=parsed.size,
        raw=raw,
    )
    session.add(row)
    await session.flush()
    session.add_all(MailThreadRef(message_id=row.id, ref_key=ref) for ref in parsed.thread_refs)
    return row


async def find_message(session: AsyncSession, message_key: str) -> MailMessage | None:
    """The stored message with this key, if any."""
    return await session.scalar(sa.select(MailMessage).where(MailMessage.message_key == message_key))


async def save_message(
    session: AsyncSession,
    mailbox: Mailbox,
    raw: bytes,
    *,
    folder: str | None = None,
    uid: int | None = None,
    backend: CrmBackend | None = None,
    now: datetime | None = None,
) -> SavedMail:
    """Store one message of ``mailbox`` once (M12) and link it through the engine; the caller commits.

    The same message again (another folder, a restart, a second mailbox) is not stored or linked twice.
    """
    parsed = parse_message(raw)
    existing = await find_message(session, parsed.message_key)
    if existing is not None:
        return SavedMail(existing.id, existing.message_key, existing.interaction_key, None, new=False)
    now = now or datetime.now(UTC)
    direction = direction_of(parsed, mailbox.address)
    key = interaction_key(Channel.EMAIL, parsed.message_key)
    row = await store_message(
        session, parsed, raw, mailbox=mailbox, folder=folder, uid=uid, direction=direction, key=key, now=now
    )
    plan = await link_message(session, mailbox, row, parsed=parsed, backend=backend, now=now)
    return SavedMail(row.id, row.message_key, key, plan, new=True)


async def link_message(
    session: AsyncSession,
    mailbox: Mailbox,
    row: MailMessage,
    *,
    parsed: ParsedMail | None = None,
    backend: CrmBackend | None = None,
    manual_save: bool = False,
    now: datetime | None = None,
) -> LinkPlan:
    """Decide a stored message through the engine and queue its CRM writes (automatic or M3 manual save)."""
    backend = backend or BuiltinCrm()
    parsed = parsed or parse_message(row.raw)
    direction = Direction(row.direction)
    party, knowledge = await party_of(session, backend, parsed, direction)
    settings = await mailbox_settings(session, mailbox)
    candidates = {*settings.queue_member_ids, *(item.responsible_id for item in knowledge.items)}
    interaction = Interaction(
        key=row.interaction_key,
        channel=Channel.EMAIL,
        direction=direction,
        party_phone=None,
        party_email=party,
        settings=settings,
        crm=await crm_mode_settings(session),
        knowledge=knowledge,
        inactive_employee_ids=await inactive_employees(session, candidates),
        manual_save=manual_save,
        thread_items=await thread_items(session, parsed.thread_refs),
    )
    context = PlanContext(
        channel=Channel.EMAIL,
        direction=direction,
        party_email=party,
        party_name=parsed.from_name if direction == Direction.INBOUND else None,
        # M6: the activity's deadline is the mail's arrival in the CRM.
        occurred_at=row.arrived_at,
        details=_details(mailbox, row),
    )
    before = await stored_plan(session, row.interaction_key)
    plan = await decide_and_record(session, interaction, context, now=now)
    if plan != before:
        take_turn(mailbox, plan, settings.queue_member_ids)
    return plan


def take_turn(mailbox: Mailbox, plan: LinkPlan, queue: tuple[int, ...]) -> None:
    """M13: an item created for a queue member moves the mailbox's turn past them."""
    if plan.creates_anything and plan.responsible_id in queue:
        mailbox.last_assigned_id = plan.responsible_id


def _details(mailbox: Mailbox, row: MailMessage) -> dict[str, Any]:
    """What the activity keeps of the mail: its subject, key and times (M6), the mailbox and its owner (M5)."""
    return {
        "message_key": row.message_key,
        "subject": row.subject,
        "mailbox": mailbox.address,
        "received_at": row.received_at.isoformat() if row.received_at else None,
        "received_zone": row.received_zone,
        "arrived_at": row.arrived_at.isoformat(),
        # M5: the timeline's "new email" entry shows the employee who connected the mailbox.
        "timeline_employee_id": mailbox.connected_by_id,
    }
