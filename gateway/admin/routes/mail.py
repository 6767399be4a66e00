"""Mail on CRM items: write from an item (O1-O6), list an item's mail (M7), complete or follow up an
incoming mail (M10), move a mail to another deal (M9).

The rules live in :mod:`mail_bridge.recipients`, :mod:`mail_bridge.sending` and :mod:`mail_bridge.saved`;
rights in :mod:`gateway.crm_bridge.rights`. A send is stored as *queued* and committed before the relay
is asked, so a mail handed over is never lost from ``outgoing_mail`` whatever happens next.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal
from gateway.admin.deps import IdPath, SessionDep
from gateway.admin.errors import conflict, forbidden, invalid
from gateway.admin.routes.mailboxes import may_use
from gateway.admin.schemas.items import ItemType
from gateway.admin.schemas.mail import (
    CandidateOut,
    CandidatesOut,
    FollowUp,
    FollowUpOut,
    ItemMailOut,
    MoveMail,
    SendMail,
    SentMailOut,
)
from gateway.config import MailConfig
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.rights import Access, Actor, load_actor, require_right
from gateway.crm_bridge.store import get_item
from gateway.storage.models import Mailbox
from mail_bridge import saved, smtp
from mail_bridge.recipients import no_recipient_reason, recipient_candidates
from mail_bridge.sending import Outgoing, SendRefused, finish_send, prepare_send

router = APIRouter(tags=["mail"])
TypePath = Annotated[ItemType, Path(description="lead, contact, company or deal")]
_MAIL_CONFIG = "mail_config"


def set_mail_config(app: FastAPI, config: MailConfig) -> None:
    """Give the mail routes the ``[mail]`` section (its SMTP relay serves mailboxes without their own)."""
    setattr(app.state, _MAIL_CONFIG, config)


def _mail_config(request: Request) -> MailConfig:
    config = getattr(request.app.state, _MAIL_CONFIG, None)
    return config if isinstance(config, MailConfig) else MailConfig()


async def _actor(session: AsyncSession, principal: CurrentPrincipal) -> Actor:
    return await load_actor(session, principal.employee_id)


def _mail_out(found: saved.ItemMail) -> ItemMailOut:
    message, activity = found.message, found.activity
    return ItemMailOut(
        message_id=message.id, message_key=message.message_key, direction=message.direction,
        subject=message.subject, from_address=message.from_address, to_addresses=list(message.to_addresses),
        received_at=message.received_at, arrived_at=message.arrived_at, activity_id=activity.id,
        responsible_id=activity.responsible_id, completed_at=activity.completed_at,
        bound_to=[ref.to_dict() for ref in saved.bound_refs(activity)],
    )


def _refused(exc: saved.MailActionRefused) -> HTTPException:
    return conflict(str(exc)) if exc.conflict else invalid(str(exc))


@router.get("/items/{item_type}/{item_id}/mail/recipients", response_model=CandidatesOut,
            summary="Recipient candidates for a mail written from an item (O3, O4)")
async def list_recipients(item_type: TypePath, item_id: IdPath, session: SessionDep,
                          principal: CurrentPrincipal) -> CandidatesOut:
    """Needs the edit right on the item; clients the caller may not view show as hidden, without addresses."""
    ref = ItemRef(item_type, item_id)
    actor = await _actor(session, principal)
    item = await get_item(session, ref)
    require_right(actor, item_type, Access.EDIT, item.responsible_id)
    candidates = await recipient_candidates(session, actor, ref)
    return CandidatesOut(
        candidates=[CandidateOut(type=c.ref.type, id=c.ref.id, name=c.name, hidden=c.hidden,
                                 addresses=list(c.addresses)) for c in candidates],
        problem=no_recipient_reason(ref, candidates),
    )


@router.post("/items/{item_type}/{item_id}/mail", response_model=SentMailOut,
             status_code=status.HTTP_201_CREATED, summary="Send a mail from an item (O1-O6)")
async def send_mail(item_type: TypePath, item_id: IdPath, body: SendMail, request: Request,
                    session: SessionDep, principal: CurrentPrincipal) -> SentMailOut:
    """403 without the rights of O4, 422 for a recipient O2/O3 refuse, 502 when the relay refuses (the mail
    is kept in outgoing_mail with status failed)."""
    actor = await _actor(session, principal)
    mailbox = await session.get(Mailbox, body.mailbox_id)
    if mailbox is None or not may_use(mailbox, principal):
        raise invalid(f"mailbox_id: mailbox {body.mailbox_id} not found among the mailboxes you may use")
    try:
        relay = smtp.relay_for(mailbox, _mail_config(request))
        outgoing = Outgoing(to=tuple(body.to), cc=tuple(body.cc), subject=body.subject, body=body.body,
                            reply_to_message_id=body.reply_to_message_id)
        prepared = await prepare_send(session, actor, ItemRef(item_type, item_id), mailbox, outgoing)
    except smtp.NoRelay as exc:
        raise invalid(str(exc)) from None
    except SendRefused as exc:
        raise (forbidden(str(exc)) if exc.forbidden else invalid(str(exc))) from None
    await session.commit()
    outcome = await smtp.send(relay, prepared.raw, prepared.sender, prepared.recipients)
    sent = await finish_send(session, actor, prepared, outcome)
    await session.commit()
    if sent.status != "sent":
        raise HTTPException(status.HTTP_502_BAD_GATEWAY,
                            detail=f"the SMTP relay did not take the mail ({sent.smtp_reply}); it is kept as "
                                   f"outgoing mail {sent.outgoing_id} with status {sent.status}")
    return SentMailOut(outgoing_id=sent.outgoing_id, message_id=sent.message_id, message_key=sent.message_key,
                       status=sent.status, smtp_reply=sent.smtp_reply,
                       created=[ref.to_dict() for ref in sent.created], rule_ids=list(sent.rule_ids))


@router.get("/items/{item_type}/{item_id}/mail", response_model=list[ItemMailOut],
            summary="An item's mail the caller may see (M7)")
async def item_mail(item_type: TypePath, item_id: IdPath, session: SessionDep,
                    principal: CurrentPrincipal) -> list[ItemMailOut]:
    """A mail shows only when the caller may view every item it is bound to."""
    found = await saved.mail_of_item(session, await _actor(session, principal), ItemRef(item_type, item_id))
    return [_mail_out(f) for f in found]


@router.post("/mail/{message_id}/complete", response_model=ItemMailOut, summary="Complete a mail's activity (M10)")
async def complete_mail(message_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> ItemMailOut:
    actor = await _actor(session, principal)
    await saved.complete_mail(session, actor, message_id)
    await session.commit()
    return _mail_out(await saved.mail_activity(session, actor, message_id))


@router.post("/mail/{message_id}/activities", response_model=FollowUpOut, status_code=status.HTTP_201_CREATED,
             summary="A new activity from an incoming mail; completes the mail's own (M10)")
async def follow_up(message_id: IdPath, body: FollowUp, session: SessionDep,
                    principal: CurrentPrincipal) -> FollowUpOut:
    try:
        old, new_id = await saved.follow_up(session, await _actor(session, principal), message_id,
                                            subject=body.subject, deadline=body.deadline,
                                            responsible_id=body.responsible_id)
    except saved.MailActionRefused as exc:
        raise _refused(exc) from None
    await session.commit()
    return FollowUpOut(completed_activity_id=old.id, new_activity_id=new_id)


@router.post("/mail/{message_id}/move", response_model=ItemMailOut, summary="Move a mail to another deal (M9)")
async def move_mail(message_id: IdPath, body: MoveMail, session: SessionDep,
                    principal: CurrentPrincipal) -> ItemMailOut:
    """Needs the edit right on both deals; 409 when the mail is on a lead and the deal converted from it."""
    actor = await _actor(session, principal)
    try:
        await saved.move_mail(session, actor, message_id, body.deal_id)
    except saved.MailActionRefused as exc:
        raise _refused(exc) from None
    await session.commit()
    return _mail_out(await saved.mail_activity(session, actor, message_id))
