"""/mailboxes: connect mailboxes to the CRM (M1, M2, M5, M8) and save a mail by hand (M3, M4).

Admins and the employee who connected a mailbox change it; those and the employees given access read it
and save its mail by hand. The IMAP secret is write-only: accepted, stored, never returned or logged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal, Principal
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, forbidden, invalid, not_found
from gateway.admin.lookup import changes, email_or_422, get_or_404, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.mailboxes import MailboxCreate, MailboxOut, MailboxUpdate, SavedMailOut
from gateway.crm_bridge.interactions import SaveRefused
from gateway.storage.models import Employee, Mailbox, MailboxAccess, MailMessage, QueueGroup, Source
from mail_bridge.linking import link_message

router = APIRouter(prefix="/mailboxes", tags=["mailboxes"])


def mailbox_out(mailbox: Mailbox) -> MailboxOut:
    fields: dict[str, Any] = {name: getattr(mailbox, name) for name in MailboxOut.model_fields
                              if name not in ("secret_set", "smtp_secret_set", "access_employee_ids")}
    return MailboxOut(**fields, secret_set=bool(mailbox.secret), smtp_secret_set=bool(mailbox.smtp_secret),
                      access_employee_ids=[a.employee_id for a in mailbox.access])


def may_use(mailbox: Mailbox, principal: Principal) -> bool:
    """Admins, the employee who connected the mailbox and those given access read it and send from it."""
    return _may_read(mailbox, principal)


def _may_read(mailbox: Mailbox, principal: Principal) -> bool:
    readers = {mailbox.connected_by_id, *(a.employee_id for a in mailbox.access)}
    return principal.is_admin or principal.employee_id in readers


def _may_change(mailbox: Mailbox, principal: Principal) -> None:
    if not (principal.is_admin or principal.employee_id == mailbox.connected_by_id):
        raise forbidden("only an administrator or the employee who connected this mailbox may change it (M5)")


async def _readable(session: AsyncSession, mailbox_id: int, principal: Principal) -> Mailbox:
    mailbox = await get_or_404(session, Mailbox, mailbox_id, "mailbox")
    if not _may_read(mailbox, principal):
        raise not_found("mailbox", mailbox_id)  # not revealed to those without access
    return mailbox


async def _check_references(session: AsyncSession, patch: dict[str, Any]) -> None:
    if patch.get("source_id") is not None:
        await referenced(session, Source, patch["source_id"], "source", "source_id")
    if patch.get("queue_group_id") is not None:
        await referenced(session, QueueGroup, patch["queue_group_id"], "queue group", "queue_group_id")
    wanted = patch.get("access_employee_ids") or []
    known = set(await session.scalars(select(Employee.id).where(Employee.id.in_(wanted))))
    missing = [i for i in wanted if i not in known]
    if missing:
        raise invalid(f"access_employee_ids: employee(s) {', '.join(map(str, missing))} not found")


def _apply(mailbox: Mailbox, patch: dict[str, Any]) -> None:
    access = patch.pop("access_employee_ids", None)
    for key, value in patch.items():
        setattr(mailbox, key, value)
    if access is not None:
        mailbox.access = [MailboxAccess(employee_id=i) for i in dict.fromkeys(access)]


@router.get("", response_model=Page[MailboxOut], summary="List the mailboxes the caller may read")
async def list_mailboxes(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[MailboxOut]:
    query = select(Mailbox)
    if not principal.is_admin:
        shared = select(MailboxAccess.mailbox_id).where(MailboxAccess.employee_id == principal.employee_id)
        query = query.where(or_(Mailbox.connected_by_id == principal.employee_id, Mailbox.id.in_(shared)))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Mailbox.id).limit(page.limit).offset(page.offset))
    return Page(items=[mailbox_out(m) for m in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=MailboxOut, status_code=status.HTTP_201_CREATED, summary="Connect a mailbox")
async def create_mailbox(body: MailboxCreate, session: SessionDep, principal: CurrentPrincipal) -> MailboxOut:
    patch = body.model_dump()
    patch["address"] = email_or_422(patch["address"], "address")
    await _check_references(session, patch)
    if await session.scalar(select(Mailbox.id).where(Mailbox.address == patch["address"])) is not None:
        raise conflict(f"the mailbox {patch['address']} is already connected")
    mailbox = Mailbox(connected_by_id=principal.employee_id)
    _apply(mailbox, patch)
    session.add(mailbox)
    await session.commit()
    await session.refresh(mailbox)
    return mailbox_out(mailbox)


@router.get("/{mailbox_id}", response_model=MailboxOut, summary="Read a mailbox and its sync state")
async def read_mailbox(mailbox_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> MailboxOut:
    return mailbox_out(await _readable(session, mailbox_id, principal))


@router.patch("/{mailbox_id}", response_model=MailboxOut, summary="Change a mailbox")
async def update_mailbox(
    mailbox_id: IdPath, body: MailboxUpdate, session: SessionDep, principal: CurrentPrincipal
) -> MailboxOut:
    mailbox = await _readable(session, mailbox_id, principal)
    _may_change(mailbox, principal)
    patch = changes(body)
    await _check_references(session, patch)
    _apply(mailbox, patch)
    await session.commit()
    await session.refresh(mailbox)
    return mailbox_out(mailbox)


@router.delete("/{mailbox_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Disconnect a mailbox")
async def delete_mailbox(mailbox_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> None:
    mailbox = await _readable(session, mailbox_id, principal)
    _may_change(mailbox, principal)
    await session.delete(mailbox)
    await session.commit()


@router.post("/{mailbox_id}/messages/{message_id}/save", response_model=SavedMailOut,
             summary="Save one mail to the CRM by hand (M3)")
async def save_by_hand(
    mailbox_id: IdPath, message_id: IdPath, session: SessionDep, principal: CurrentPrincipal
) -> SavedMailOut:
    """The binding follows the same rules as an automatic save (M3); an employee's mail fails (M4)."""
    mailbox = await _readable(session, mailbox_id, principal)
    row = await session.get(MailMessage, message_id)
    if row is None or row.mailbox_id != mailbox.id:
        raise not_found("message", message_id)
    try:
        plan = await link_message(session, mailbox, row, manual_save=True)
    except SaveRefused as refused:
        raise invalid(str(refused)) from None
    await session.commit()
    return SavedMailOut(message_id=row.id, interaction_key=row.interaction_key, action=plan.action.value,
                        rule_ids=list(plan.rule_ids))
