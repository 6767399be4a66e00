"""Fixtures for the CRM service, outbox and call-hook tests: REAL migrated databases, seeded per test.

- ``sqlite_db``: a fresh SQLite file migrated to head with Alembic (tests/conftest.py ``sqlite_url``).
- ``pg_db``: a fresh database on the session's real PostgreSQL server, migrated to head (``pg_url``).
- ``db``: parametrised over both, for the tests that must hold on each engine.
- ``world``: employees, a queue group, a source, pipelines and a rented number, committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.storage.models import (
    CRM_SETTINGS_ID,
    CrmSettings,
    Employee,
    EmployeeEmail,
    EmployeePhone,
    ExceptionEntry,
    Number,
    Pipeline,
    QueueGroup,
    QueueMember,
    Source,
)
from gateway.storage.session import make_engine, make_sessionmaker


@dataclass
class Db:
    """One migrated test database."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"), params))


async def _open(url: str) -> Db:
    engine = make_engine(url)
    return Db(url, engine, make_sessionmaker(engine))


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Db]:
    """A SQLite file migrated to head by Alembic (engineer D's ``sqlite_url``), owned by this test."""
    db = await _open(sqlite_url)
    yield db
    await db.engine.dispose()


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[Db]:
    """A database on the session's real PostgreSQL, migrated to head (D's ``pg_url``), owned by this test."""
    db = await _open(pg_url)
    yield db
    await db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Db:
    """The same test on a real SQLite file and on a real PostgreSQL server."""
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


@dataclass
class World:
    """Ids of the seeded rows."""

    anna: int  # first queue member (T10)
    boris: int  # second queue member
    chloe: int  # not in the queue; has a profile phone (T9)
    admin: int
    queue: int
    source: int  # the number's custom source (T6)
    general_pipeline: int
    sales_pipeline: int
    number: str  # the DID as the admin wrote it
    region: str
    employee_phone: str
    exception_phone: str


async def _get_or_create_settings(session: AsyncSession) -> CrmSettings:
    settings = await session.get(CrmSettings, CRM_SETTINGS_ID)
    if settings is None:
        settings = CrmSettings(id=CRM_SETTINGS_ID)
        session.add(settings)
    return settings


async def seed_world(db: Db) -> World:
    """Three employees, a queue group [anna, boris], a custom source, two pipelines, one FR number."""
    async with db.sessions() as session, session.begin():
        anna = Employee(name="Anna", extension="101")
        boris = Employee(name="Boris", extension="102")
        chloe = Employee(name="Chloé", extension="103")
        chloe.phones.append(EmployeePhone(value="06 11 22 33 44", normalized="+33611223344"))
        chloe.emails.append(EmployeeEmail(value="chloe@ourco.example", normalized="chloe@ourco.example"))
        admin = Employee(name="Root", is_admin=True)
        session.add_all([anna, boris, chloe, admin])
        await session.flush()
        # Positions deliberately out of id order: T10 follows the queue's order, not the ids.
        queue = QueueGroup(name="Sales line")
        queue.members.extend(
            [QueueMember(employee_id=boris.id, position=2), QueueMember(employee_id=anna.id, position=1)]
        )
        source = Source(code="ADS_CALL", name="Ads landing number", standard=False)
        general = await session.scalar(sa.select(Pipeline).where(Pipeline.is_default.is_(True)))
        if general is None:
            general = Pipeline(name="General", is_default=True)
        sales = Pipeline(name="Enterprise sales", is_default=False)
        session.add_all([queue, source, general, sales])
        await session.flush()
        session.add(
            Number(
                kind="rented",
                number="+33 1 42 68 53 00",
                name="Paris sales",
                default_region="FR",
                queue_group_id=queue.id,
                unknown_caller_action="auto_lead",
                create_for="all",
                source_id=source.id,
            )
        )
        session.add(ExceptionEntry(kind="phone", value="01 99 00 00 01", normalized="+33199000001"))
        await _get_or_create_settings(session)
        return World(
            anna=anna.id,
            boris=boris.id,
            chloe=chloe.id,
            admin=admin.id,
            queue=queue.id,
            source=source.id,
            general_pipeline=general.id,
            sales_pipeline=sales.id,
            number="+33 1 42 68 53 00",
            region="FR",
            employee_phone="06 11 22 33 44",
            exception_phone="+33 1 99 00 00 01",
        )


@pytest.fixture
async def world(db: Db) -> World:
    return await seed_world(db)


@pytest.fixture
async def sqlite_world(sqlite_db: Db) -> World:
    return await seed_world(sqlite_db)


async def update_number(db: Db, **values: Any) -> None:
    """Change the seeded number's CRM-integration settings."""
    async with db.sessions() as session, session.begin():
        number = await session.scalar(sa.select(Number))
        for key, value in values.items():
            setattr(number, key, value)


async def update_crm(db: Db, **values: Any) -> None:
    """Change the CRM-wide settings."""
    async with db.sessions() as session, session.begin():
        settings = await _get_or_create_settings(session)
        for key, value in values.items():
            setattr(settings, key, value)


async def place_call(
    db: Db,
    world: World,
    *,
    call_id: str,
    party: str,
    direction: str = "inbound",
    agent_id: int | None = None,
    backend: Any = None,
    run_worker: bool = True,
) -> Any:
    """A call through the real path: plan_call in its own transaction, then one outbox worker pass."""
    from gateway.crm_bridge.call_hooks import plan_call
    from gateway.crm_bridge.outbox import OutboxWorker
    from gateway.crm_bridge.store import BuiltinCrm

    async with db.sessions() as session, session.begin():
        plan = await plan_call(
            session,
            call_id=call_id,
            number=world.number,
            party_raw=party,
            direction=direction,
            agent_id=agent_id,
        )
    if run_worker:
        await OutboxWorker(db.sessions, backend or BuiltinCrm()).run_once()
    return plan
