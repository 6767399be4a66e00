"""Property-based fuzzing of the whole admin API from its own /openapi.json (issue #3 item 6).

Schemathesis generates valid and invalid requests for every operation and sends them in-process
(ASGI) with an admin token against a real, migrated and seeded SQLite database. The only check is
the one the acceptance criteria name: no answer is a 5xx. The number of examples per operation is
bounded so the run stays short.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy.pool import NullPool

from gateway.admin.api import build_app
from gateway.admin.auth import hash_token
from gateway.admin.deps import set_sessionmaker
from gateway.storage.models import ApiToken, Employee, Number, QueueGroup, QueueMember, Trunk
from gateway.storage.session import make_engine, make_sessionmaker

FUZZ_TOKEN = "gwt_schemathesis-admin-token"
# Ids far above what the fuzzer's small integers hit, so a generated PATCH/DELETE of employee 1 or
# token 1 does not lock the fuzzing admin out halfway through the run.
FUZZ_ADMIN_ID = 900_001


async def _seed(maker) -> None:
    async with maker() as session:
        session.add(Employee(id=FUZZ_ADMIN_ID, name="Fuzz Admin", is_admin=True, active=True))
        await session.flush()
        session.add(ApiToken(id=FUZZ_ADMIN_ID, employee_id=FUZZ_ADMIN_ID, token_hash=hash_token(FUZZ_TOKEN),
                             name="schemathesis"))
        agents = [Employee(name=f"Agent {i}", extension=f"2{i:02d}", active=True) for i in range(1, 4)]
        session.add_all(agents)
        await session.flush()
        group = QueueGroup(name="Sales", members=[QueueMember(employee_id=a.id, position=i)
                                                   for i, a in enumerate(agents)])
        session.add(group)
        await session.flush()
        session.add(Number(kind="rented", number="+33184880099", name="Main", default_region="FR",
                           queue_group_id=group.id, source_id=1,
                           trunk=Trunk(name="Provider", kind="provider", host="sip.provider.example",
                                       trust="registration", username="main", secret="never-returned")))
        await session.commit()


# The schema is read from the app itself; each test then points the app at a fresh database.
# SIP is reported ready: /healthz answering 503 while SIP is down is by design, not a server error.
APP = build_app(make_sessionmaker(make_engine("sqlite+aiosqlite://", poolclass=NullPool)),
                sip_ready=lambda: True)
# Coverage-phase cases are unbounded by max_examples; the fuzzing phase alone keeps the run short.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(autouse=True)
def fresh_database(migrated_template: Path, tmp_path: Path) -> None:
    target = tmp_path / "fuzz.db"
    shutil.copyfile(migrated_template, target)
    # NullPool: schemathesis drives the app from its own event loop per request; pooled aiosqlite
    # connections must not outlive the loop that opened them.
    maker = make_sessionmaker(make_engine(f"sqlite+aiosqlite:///{target}", poolclass=NullPool))
    asyncio.run(_seed(maker))
    set_sessionmaker(APP, maker)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_admin_api_fuzz_finds_no_server_error(case) -> None:
    """No generated request, valid or not, makes the admin API answer 5xx."""
    response = case.call_and_validate(headers={"Authorization": f"Bearer {FUZZ_TOKEN}"},
                                      checks=[not_a_server_error])
    assert response.status_code < 500
