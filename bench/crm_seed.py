"""A database for the CRM rows of `make bench`: migrated, then seeded with what `bench.crm.CrmSetup` names.

One number (its calls create leads, T4a, and ring a known caller's responsible first, T7), a queue
group holding the one employee whose phone the bench registers, and the known callers as that
employee's contacts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.crm import CrmSetup
from gateway.admin.sip_credentials import set_sip_secret
from gateway.storage.models import Contact, Employee, ItemPhone, Number, QueueGroup, QueueMember
from gateway.storage.session import make_engine, make_sessionmaker, upgrade_database

REGION = "DE"


def fresh_database(path: Path) -> str:
    """A new SQLite file at `path`, migrated to head; its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path.resolve()}"
    upgrade_database(url)
    return url


async def _seed(url: str, setup: CrmSetup, realm: str) -> None:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            employee = Employee(name="Bench Agent", extension=setup.extension, active=True)
            set_sip_secret(employee, setup.extension, realm, setup.secret)
            session.add(employee)
            await session.flush()
            group = QueueGroup(name="Bench", strategy="in_order", ring_time_s=20,
                               members=[QueueMember(employee_id=employee.id, position=1)])
            session.add(group)
            await session.flush()
            session.add(Number(
                kind="rented", number=setup.number, e164=setup.number, name="bench", default_region=REGION,
                queue_group_id=group.id, unknown_caller_action="auto_lead", create_for="all",
                route_known_to_responsible=True,
            ))
            for index, caller in enumerate(setup.known_callers):
                session.add(Contact(name=f"Known caller {index + 1}", responsible_id=employee.id,
                                    phones=[ItemPhone(value=caller, normalized=caller)]))
            await session.commit()
    finally:
        await engine.dispose()


def seeded_database(path: Path, setup: CrmSetup = CrmSetup(), realm: str = "bench") -> str:
    """A fresh database at `path` seeded for the CRM rows; its URL."""
    url = fresh_database(path)
    asyncio.run(_seed(url, setup, realm))
    return url
