"""Fixtures for the mail bridge: the CRM test databases of tests/crm_bridge (real SQLite and PostgreSQL,
migrated by Alembic) and a seeded mailbox."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from gateway.storage.models import EmployeeEmail, Mailbox, MailboxAccess
from tests.crm_bridge.conftest import (  # noqa: F401
    Db,
    World,
    db,
    pg_db,
    seed_world,
    sqlite_db,
    sqlite_world,
    world,
)
from tests.mail_bridge.dovecot import Dovecot, start_dovecot
from tests.mail_bridge.smtp_sink import SmtpSink, start_sink

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
        if not await session.scalar(sa.select(EmployeeEmail).where(EmployeeEmail.normalized == "anna@ourco.example")):
            session.add(EmployeeEmail(employee_id=crm.anna, value="anna@ourco.example", normalized="anna@ourco.example"))
        await session.flush()
        return mailbox.id


@pytest.fixture
async def mail_world(db: Db, world: World) -> MailWorld:  # noqa: F811
    return MailWorld(world, await seed_mailbox(db, world))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The session's Dovecot (IMAP + IDLE + LMTP) with a pool of users, one per test that asks."""
    server = start_dovecot({f"user{i}@example.test": f"pw{i}" for i in range(1, 41)})
    try:
        yield server
    finally:
        server.cleanup()


_users = itertools.count(1)


@dataclass
class ImapWorld:
    """A SQLite CRM world with one mailbox on the session's Dovecot, for a user no other test uses."""

    db: Db
    crm: World
    mailbox_id: int
    address: str
    dovecot: Dovecot


@pytest.fixture
async def imap_world(sqlite_db: Db, sqlite_world: World, dovecot: Dovecot) -> ImapWorld:  # noqa: F811
    n = next(_users)
    address = f"user{n}@example.test"
    mailbox_id = await seed_mailbox(
        sqlite_db, sqlite_world, address=address, login=address, secret=f"pw{n}",
        imap_port=dovecot.imap_port, folders=["INBOX", "Spam"],
    )
    return ImapWorld(sqlite_db, sqlite_world, mailbox_id, address, dovecot)


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    """A real SMTP listener (aiosmtpd) the mailboxes relay through."""
    sink, server = await start_sink()
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
