"""Fixtures for the mail bridge: the CRM test databases of tests/crm_bridge (real SQLite and PostgreSQL,
migrated by Alembic) and a seeded mailbox."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.storage.models import EmployeeEmail, Mailbox, MailboxAccess
from tests.crm_bridge.conftest import Db, World, db, pg_db, seed_world, sqlite_db, world  # noqa: F401

MAILBOX_ADDRESS = "sales@ourco.example"


@dataclass
class MailWorld:
    """The CRM world plus one mailbox connected by boris, readable by anna."""

    crm: World
    mailbox_id: int


async def seed_mailbox(database: Db, crm: World, **settings: object) -> int:
    """A mailbox (integration on, queue = the seeded group, source = the seeded one) and anna's address."""
    async with database.sessions() as session, session.begin():
        mailbox = Mailbox(
            address=MAILBOX_ADDRESS,
            imap_host="127.0.0.1",
            imap_port=1,
            tls_mode="none",
            login=MAILBOX_ADDRESS,
            secret="s3cret-imap",
            folders=["INBOX"],
            spam_folder="Spam",
            crm_integration=True,
            source_id=crm.source,
            queue_group_id=crm.queue,
            connected_by_id=crm.boris,
        )
        for key, value in settings.items():
            setattr(mailbox, key, value)
        mailbox.access.append(MailboxAccess(employee_id=crm.anna))
        session.add(mailbox)
        session.add(EmployeeEmail(employee_id=crm.anna, value="anna@ourco.example", normalized="anna@ourco.example"))
        await session.flush()
        return mailbox.id


@pytest.fixture
async def mail_world(db: Db, world: World) -> MailWorld:  # noqa: F811
    return MailWorld(world, await seed_mailbox(db, world))
