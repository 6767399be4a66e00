"""The demo mailbox `make run` plants beside gateway/demo.py's seed (the lead calls :func:`seed_demo_mailbox`
right after ``seed_demo`` when it created the demo).

Its CRM integration is left OFF and its IMAP server (127.0.0.1:1143) is a placeholder: the bridge runs,
shows the mailbox as *failing* with the reason in ``GET /mailboxes`` and retries with back-off, and no
mail reaches the CRM until an admin points it at a real server and switches the integration on
(README, "Connecting a mailbox").
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.storage.models import Employee, Mailbox, QueueGroup, Source

DEMO_MAILBOX = "sales@demo.example"
DEMO_IMAP_PORT = 1143


async def seed_demo_mailbox(sessionmaker: async_sessionmaker[AsyncSession]) -> int | None:
    """Add the demo mailbox when no mailbox is connected yet; its id, or None when nothing was added."""
    async with sessionmaker() as session, session.begin():
        if await session.scalar(sa.select(Mailbox.id).limit(1)) is not None:
            return None
        admin = await session.scalar(
            sa.select(Employee.id).where(Employee.is_admin.is_(True), Employee.active.is_(True)).order_by(Employee.id)
        )
        queue = await session.scalar(sa.select(QueueGroup.id).order_by(QueueGroup.id))
        source = await session.scalar(sa.select(Source.id).where(Source.code == "EMAIL"))
        mailbox = Mailbox(
            address=DEMO_MAILBOX, imap_host="127.0.0.1", imap_port=DEMO_IMAP_PORT, tls_mode="none",
            login=DEMO_MAILBOX, secret="demo-mailbox", folders=["INBOX"], spam_folder="Spam",
            crm_integration=False, source_id=source, queue_group_id=queue, connected_by_id=admin,
        )
        session.add(mailbox)
        await session.flush()
        return mailbox.id


def announcement(mailbox_id: int | None) -> str | None:
    """The start-up line about the demo mailbox, when one was added."""
    if mailbox_id is None:
        return None
    return (f"demo mailbox {DEMO_MAILBOX} (id {mailbox_id}) connected with CRM integration off; point it at a "
            f"real IMAP server with PATCH /mailboxes/{mailbox_id} (README: Connecting a mailbox)")
