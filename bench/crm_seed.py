"""A database for the CRM rows of `make bench`: migrated, then seeded with what `bench.crm.CrmSetup` names.

One number (its calls create leads, T4a, and ring a known caller's responsible first, T7) and a queue
group (*evenly*) of `AGENTS` employees plus the one whose phone the bench registers with digest. An
employee on a call is skipped (R3), so one phone could take one call at a time: the agents' phones are
registrations saved in the database (as a restart would find them), all reaching the bench's SIPp uas.
Each known caller is the contact of one agent.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path

from bench.crm import CrmSetup
from gateway.admin.sip_credentials import set_sip_secret
from gateway.storage.models import (
    Contact,
    Employee,
    ItemPhone,
    Number,
    QueueGroup,
    QueueMember,
    RegistrarBinding,
)
from gateway.storage.session import make_engine, make_sessionmaker, upgrade_database

REGION = "DE"
AGENTS = 100
FIRST_AGENT_EXTENSION = 2001


def crm_setup(agents: int = AGENTS) -> CrmSetup:
    """The setup of the CRM rows: one known caller per agent."""
    return replace(CrmSetup(), known_callers=tuple(f"+4917010{index:05d}" for index in range(agents)))


def fresh_database(path: Path) -> str:
    """A new SQLite file at `path`, migrated to head; its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    # The gateway's call spool beside the file (`<file>-spool`): an earlier run's unwritten calls would
    # be replayed into the new database at start-up and load the first steps.
    shutil.rmtree(path.with_name(path.name + "-spool"), ignore_errors=True)
    url = f"sqlite+aiosqlite:///{path.resolve()}"
    upgrade_database(url)
    return url


def _binding(extension: str, uas: tuple[str, int], now: float) -> RegistrarBinding:
    host, port = uas
    return RegistrarBinding(
        aor=extension, contact=f"sip:{extension}@{host}:{port}", expires_at=now + 7200, call_id=f"bench-{extension}",
        cseq=1, source_transport="udp", source_host=host, source_port=port, registered_at=now,
    )


async def _seed(url: str, setup: CrmSetup, realm: str, uas: tuple[str, int], agents: int) -> None:
    engine = make_engine(url)
    now = time.time()
    try:
        async with make_sessionmaker(engine)() as session:
            employee = Employee(name="Bench Agent", extension=setup.extension, active=True)
            set_sip_secret(employee, setup.extension, realm, setup.secret)
            extensions = [str(FIRST_AGENT_EXTENSION + index) for index in range(agents)]
            staff = [employee, *(Employee(name=f"Agent {ext}", extension=ext, active=True) for ext in extensions)]
            session.add_all(staff)
            session.add_all(_binding(ext, uas, now) for ext in extensions)
            await session.flush()
            group = QueueGroup(name="Bench", strategy="evenly", ring_time_s=20, members=[
                QueueMember(employee_id=member.id, position=index + 1) for index, member in enumerate(staff)])
            session.add(group)
            await session.flush()
            session.add(Number(
                kind="rented", number=setup.number, e164=setup.number, name="bench", default_region=REGION,
                queue_group_id=group.id, unknown_caller_action="auto_lead", create_for="all",
                route_known_to_responsible=True,
            ))
            for index, caller in enumerate(setup.known_callers):
                owner = staff[1 + index % agents] if agents else employee
                session.add(Contact(name=f"Known caller {index + 1}", responsible_id=owner.id,
                                    phones=[ItemPhone(value=caller, normalized=caller)]))
            await session.commit()
    finally:
        await engine.dispose()


def seeded_database(
    path: Path, setup: CrmSetup, uas: tuple[str, int], *, realm: str = "bench", agents: int = AGENTS
) -> str:
    """A fresh database at `path` seeded for the CRM rows, the agents' phones at `uas`; its URL."""
    url = fresh_database(path)
    asyncio.run(_seed(url, setup, realm, uas, agents))
    return url
