"""Sending a mail from a CRM item (SPEC O1-O6, M12) in two steps around the SMTP relay.

:func:`prepare_send` checks the rights (O4) and the recipients (O2/O3/O4), builds the message with our
own Message-ID and stores it with its ``outgoing_mail`` row as *queued*; the caller commits, hands the
stored bytes to the relay (:mod:`mail_bridge.smtp`) and calls :func:`finish_send` with the relay's
answer. Only a mail the relay accepted changes the CRM: an address new to the CRM gets a lead or a
contact when sending to any address is on (O1; never a second record for a known address, O5; a
contact created from a deal is not linked to it, O6), and the mail becomes an activity on the item,
decided and queued like every interaction (Decision + outbox), so the client's reply threads onto it (M12).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge import outbox
from gateway.crm_bridge.backend import CrmBackend, NewItem
from gateway.crm_bridge.interactions import interaction_key, store_decision
from gateway.crm_bridge.linking import Action, Channel, Direction, ItemRef, LinkPlan, PartyKnowledge
from gateway.crm_bridge.rights import Access, Actor, require_right
from gateway.crm_bridge.service import PlanContext
from gateway.crm_bridge.store import BuiltinCrm, get_item
from gateway.storage.models import (
    CRM_SETTINGS_ID,
    CrmSettings,
    Employee,
    Mailbox,
    MailMessage,
    OutgoingMail,
    SmtpStatus,
    Source,
)
from mail_bridge.linking import store_message
from mail_bridge.message import parse_message
from mail_bridge.recipients import (
    check_recipients,
    no_recipient_reason,
    normalized_or_error,
    recipient_candidates,
)
from mail_bridge.smtp import SmtpOutcome


class SendRefused(Exception):
    """A send the rules refuse; ``forbidden`` for a rights problem (O4), else a request to fix (O2/O3)."""

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.forbidden = forbidden


@dataclass(frozen=True)
class Outgoing:
    """What the sender wrote: raw recipients (a display name may come with each), subject and text."""

    to: tuple[str, ...]
    subject: str
    body: str
    cc: tuple[str, ...] = ()
    reply_to_message_id: int | None = None


@dataclass(frozen=True)
class PreparedMail:
    """A stored, queued mail ready for the relay."""

    outgoing_id: int
    raw: bytes
    sender: str
    recipients: list[str]
    outside: tuple[str, ...]
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SentMail:
    """The result of a send: the outgoing row, its SMTP status and what the CRM got."""

    outgoing_id: int
    message_id: int
    message_key: str
    status: str
    smtp_reply: str
    created: tuple[ItemRef, ...]
    rule_ids: tuple[str, ...]


def creation_for(known: PartyKnowledge, creates: str, item_type: str) -> tuple[str | None, tuple[str, ...]]:
    """O1/O5/O6 for one address outside the item: what to create for it, and why."""
    if known.items or known.is_employee or known.is_exception:
        return None, ("O5",)  # already in the CRM (or ours, or on the exception list): never a duplicate
    return creates, ("O1", "O6") if item_type == "deal" and creates == "contact" else ("O1",)


def _parsed_recipients(raw: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    addresses: list[str] = []
    names: dict[str, str] = {}
    for value in raw:
        try:
            address = normalized_or_error(value)
        except ValueError as exc:
            raise SendRefused(str(exc)) from None
        addresses.append(address)
        display = parseaddr(value)[0].strip()
        if display:
            names.setdefault(address, display)
    return list(dict.fromkeys(addresses)), names


async def _reply_headers(session: AsyncSession, message_id: int | None) -> dict[str, str]:
    if message_id is None:
        return {}
    answered = await session.get(MailMessage, message_id)
    if answered is None or not answered.message_id:
        raise SendRefused(f"reply_to_message_id: message {message_id} not found or has no Message-ID")
    refs = " ".join(x for x in (answered.in_reply_to, answered.message_id) if x)
    return {"In-Reply-To": answered.message_id, "References": refs}


def compose(mailbox: Mailbox, sender_name: str, to: list[str], cc: list[str], outgoing: Outgoing,
            now: datetime, extra: dict[str, str]) -> bytes:
    """The message with our own Message-ID, as the bytes stored and handed to the relay."""
    message = EmailMessage()
    message["From"] = formataddr((sender_name, mailbox.address))
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = outgoing.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=mailbox.address.rpartition("@")[2])
    for name, value in extra.items():
        message[name] = value
    message.set_content(outgoing.body)
    return message.as_bytes(policy=SMTP)


async def prepare_send(
    session: AsyncSession, actor: Actor, ref: ItemRef, mailbox: Mailbox, outgoing: Outgoing,
    *, now: datetime | None = None,
) -> PreparedMail:
    """Check O2-O4, store the message and its queued outgoing row; the caller commits, then sends."""
    now = now or datetime.now(UTC)
    item: Any = await get_item(session, ref)
    require_right(actor, ref.type, Access.EDIT, item.responsible_id)  # O4
    to, names = _parsed_recipients(outgoing.to)
    cc, cc_names = _parsed_recipients(outgoing.cc)
    if not to:
        raise SendRefused("to: name at least one recipient")
    settings = await session.get(CrmSettings, CRM_SETTINGS_ID)
    allow_any = bool(settings and settings.allow_email_to_any_address)
    candidates = await recipient_candidates(session, actor, ref)
    reason = no_recipient_reason(ref, candidates)
    if reason is not None and not allow_any:
        raise SendRefused(reason)
    check = check_recipients([*to, *cc], candidates, allow_any_address=allow_any)
    if check.refused:
        address, rule, why = check.refused[0]
        raise SendRefused(f"{address} {why} ({rule})", forbidden=rule == "O4")
    sender = await session.get(Employee, actor.employee_id) if actor.employee_id is not None else None
    raw = compose(mailbox, sender.name if sender else "", to, [a for a in cc if a not in to], outgoing, now,
                  await _reply_headers(session, outgoing.reply_to_message_id))
    parsed = parse_message(raw)
    row = await store_message(
        session, parsed, raw, mailbox=mailbox, folder=None, uid=None, direction=Direction.OUTBOUND,
        key=interaction_key(Channel.EMAIL, parsed.message_key), now=now,
    )
    queued = OutgoingMail(message_id=row.id, mailbox_id=mailbox.id, item_type=ref.type, item_id=ref.id,
                          sender_id=actor.employee_id, status=SmtpStatus.QUEUED.value, created_at=now,
                          extra={"to": to, "cc": cc})
    session.add(queued)
    await session.flush()
    return PreparedMail(queued.id, raw, mailbox.address, list(dict.fromkeys([*to, *cc])), check.outside,
                        {**cc_names, **names})


async def finish_send(
    session: AsyncSession, actor: Actor, prepared: PreparedMail, outcome: SmtpOutcome,
    *, backend: CrmBackend | None = None, now: datetime | None = None,
) -> SentMail:
    """Record the relay's answer; when it accepted, the CRM writes (O1/O5/O6, the item's activity)."""
    now = now or datetime.now(UTC)
    backend = backend or BuiltinCrm()
    queued = await session.get(OutgoingMail, prepared.outgoing_id)
    row = await session.get(MailMessage, queued.message_id) if queued is not None else None
    if queued is None or row is None:
        raise LookupError(f"outgoing mail {prepared.outgoing_id} is gone")
    queued.attempts += 1
    queued.smtp_reply = outcome.reply[:1000]
    if not outcome.accepted:
        queued.status = SmtpStatus.FAILED.value
        return SentMail(queued.id, row.id, row.message_key, queued.status, outcome.reply, (), ())
    queued.status, queued.sent_at = SmtpStatus.SENT.value, now
    ref = ItemRef(queued.item_type, queued.item_id)
    created, rules = await _create_for_outside(session, backend, actor, ref, prepared)
    await _record_activity(session, ref, row, prepared, rules, now)
    return SentMail(queued.id, row.id, row.message_key, queued.status, outcome.reply, created, rules)


async def _create_for_outside(
    session: AsyncSession, backend: CrmBackend, actor: Actor, ref: ItemRef, prepared: PreparedMail,
) -> tuple[tuple[ItemRef, ...], tuple[str, ...]]:
    settings = await session.get(CrmSettings, CRM_SETTINGS_ID)
    creates = settings.any_address_creates if settings else "lead"
    rules: list[str] = ["O4", "O1" if prepared.outside else "O2"]
    created: list[ItemRef] = []
    source = await session.scalar(sa.select(Source.id).where(Source.code == "EMAIL"))
    for address in prepared.outside:
        what, why = creation_for(await backend.find_party(session, email=address), creates, ref.type)
        rules.extend(why)
        if what is None:
            continue
        name = prepared.names.get(address, address)
        new = NewItem(source_id=source, responsible_id=actor.employee_id, emails=(address,))
        if what == "contact":  # O6: added to the CRM, never linked to the item written from
            created.append(await backend.create_contact(session, name=name, new=new, actor=actor))
        else:
            created.append(await backend.create_lead(session, title=f"Email to {name}", new=new, actor=actor))
    return tuple(created), tuple(dict.fromkeys(rules))


async def _record_activity(
    session: AsyncSession, ref: ItemRef, row: MailMessage, prepared: PreparedMail, rules: tuple[str, ...],
    now: datetime,
) -> None:
    item: Any = await get_item(session, ref)
    # M5: the responsible of an email activity is the responsible of the item it is on.
    plan = LinkPlan(interaction_key=row.interaction_key, action=Action.ATTACH, attach_to=(ref,),
                    responsible_id=item.responsible_id, record_activity=True, rule_ids=(*rules, "M5"))
    context = PlanContext(
        channel=Channel.EMAIL, direction=Direction.OUTBOUND, party_email=prepared.recipients[0],
        occurred_at=now,
        details={"message_key": row.message_key, "subject": row.subject, "mailbox": prepared.sender,
                 "to": prepared.recipients, "sent_at": now.isoformat(), "outgoing_id": prepared.outgoing_id},
    )
    if await store_decision(session, row.interaction_key, Channel.EMAIL, plan, now):
        await outbox.apply_plan(session, plan, context, now=now)
