"""Building raw messages and pushing them through the real linking path (store, engine, outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Activity, ActivityBinding, Lead, Mailbox, TimelineEntry
from mail_bridge.linking import SavedMail, save_message
from tests.crm_bridge.conftest import Db


def message(
    *,
    sender: str = "Anne Client <anne@client.example>",
    to: str = "sales@ourco.example",
    message_id: str | None = "<m1@client.example>",
    subject: str = "Quote please",
    date: str = "Fri, 04 Dec 2026 10:30:00 +0200",
    extra: str = "",
    body: bytes = b"Hello\r\n",
) -> bytes:
    """An RFC 5322 message with CRLF line ends."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    lines.extend(line for line in extra.split("\n") if line)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def deliver(db: Db, mailbox_id: int, raw: bytes, *, now: datetime | None = None, **kw: Any) -> SavedMail:
    """One message through save_message in its own transaction, then one outbox worker pass."""
    async with db.sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        saved = await save_message(session, mailbox, raw, now=now, **kw)
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()
    return saved


async def client_contact(db: Db, email: str, responsible: int) -> ItemRef:
    """An existing contact with that address."""
    async with db.sessions() as session, session.begin():
        return await BuiltinCrm().create_contact(
            session, name="Existing client", new=NewItem(responsible_id=responsible, emails=(email,))
        )


async def bindings_of(db: Db, interaction_key: str) -> set[ItemRef]:
    """The items the interaction's activity is bound to."""
    async with db.sessions() as session:
        rows = await session.execute(
            sa.select(ActivityBinding.item_type, ActivityBinding.item_id)
            .join(Activity, Activity.id == ActivityBinding.activity_id)
            .where(Activity.interaction_key == interaction_key)
        )
        return {ItemRef(t, i) for t, i in rows.all()}


async def activity_of(db: Db, interaction_key: str) -> Activity | None:
    async with db.sessions() as session:
        return await session.scalar(sa.select(Activity).where(Activity.interaction_key == interaction_key))


async def leads(db: Db) -> list[Lead]:
    async with db.sessions() as session:
        return list((await session.scalars(sa.select(Lead).order_by(Lead.id))).all())


async def timeline(db: Db, ref: ItemRef) -> list[TimelineEntry]:
    async with db.sessions() as session:
        rows = await session.scalars(
            sa.select(TimelineEntry).where(TimelineEntry.item_type == ref.type, TimelineEntry.item_id == ref.id)
        )
        return list(rows.all())


async def headers_of(db: Db, employee_id: int) -> dict[str, str]:
    """A bearer token for the employee, as request headers."""
    from gateway.admin.auth import issue_token

    async with db.sessions() as session, session.begin():
        _, plain = await issue_token(session, employee_id, "test")
    return {"Authorization": f"Bearer {plain}"}


async def grant(db: Db, employee_id: int, **rights: tuple[str, str]) -> None:
    """Give an employee (view, edit) scopes per item type, e.g. ``deal=("all", "own")``."""
    from gateway.storage.models import EmployeeRight

    async with db.sessions() as session, session.begin():
        await session.execute(sa.delete(EmployeeRight).where(EmployeeRight.employee_id == employee_id))
        session.add_all(EmployeeRight(employee_id=employee_id, item_type=t, view=v, edit=e)
                        for t, (v, e) in rights.items())


async def run_outbox(db: Db) -> None:
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()
