"""The demo seed `make run` plants in a new database (issue #3 item 8)."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy import func, select

from gateway.admin.api import build_app
from gateway.demo import DEMO_NUMBER, DEMO_SIP_SECRETS, seed_demo, seed_demo_if_new
from gateway.storage.models import ApiToken, Employee, Number, QueueGroup, Trunk
from gateway.storage.session import make_engine, make_sessionmaker


async def counts(sessionmaker) -> tuple[int, ...]:
    async with sessionmaker() as session:
        return tuple([await session.scalar(select(func.count()).select_from(m))
                      for m in (Employee, QueueGroup, Number, ApiToken)])


async def test_demo_seed_is_complete_and_its_token_works(sessionmaker):
    seeded = await seed_demo(sessionmaker)
    assert seeded.created and seeded.admin_token
    assert await counts(sessionmaker) == (2, 1, 1, 1)
    app = build_app(sessionmaker)
    headers = {"Authorization": f"Bearer {seeded.admin_token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        assert (await client.get("/me", headers=headers)).json()["is_admin"] is True
        group = (await client.get("/queue-groups", headers=headers)).json()["items"][0]
        assert len(group["member_ids"]) == 2
        plan = (await client.post("/simulate/call", headers=headers,
                                  json={"number": DEMO_NUMBER, "from": "+33 6 12 34 56 78"})).json()
    assert plan["action"] == "create_lead"
    assert plan["responsible_id"] == group["member_ids"][0]


async def test_demo_seed_is_idempotent(sessionmaker):
    first = await seed_demo(sessionmaker)
    after_first = await counts(sessionmaker)
    second = await seed_demo(sessionmaker)
    assert first.created and not second.created
    assert second.admin_token is None
    assert await counts(sessionmaker) == after_first


async def test_demo_seed_skips_a_database_someone_configured(client, admin, sessionmaker):
    before = await counts(sessionmaker)
    assert not (await seed_demo(sessionmaker)).created
    assert await counts(sessionmaker) == before


async def test_demo_seed_uses_configured_token_without_printing_it(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    seeded = await seed_demo_if_new(url, admin_token="gwt_from-config")
    assert seeded.created and seeded.admin_token is None
    assert "gwt_from-config" not in seeded.announcement()
    assert not (await seed_demo_if_new(url)).created
    engine = make_engine(url)
    try:
        app = build_app(make_sessionmaker(engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
            me = await client.get("/me", headers={"Authorization": "Bearer gwt_from-config"})
        assert me.json()["name"] == "Alice Martin"
    finally:
        await engine.dispose()


async def test_demo_restart_names_the_command_for_a_new_admin_token(sessionmaker):
    first = await seed_demo(sessionmaker)
    again = await seed_demo(sessionmaker)
    text = again.announcement(".venv/bin/gateway", "config/demo.toml")
    assert again.admin_id == first.admin_id is not None
    assert f".venv/bin/gateway token create --config config/demo.toml --employee {first.admin_id}" in text
    assert first.admin_token not in text


async def test_demo_announcement_names_the_cli_as_started(sessionmaker):
    text = (await seed_demo(sessionmaker)).announcement(".venv/bin/gateway", "config/demo.toml")
    assert "try: .venv/bin/gateway simulate call --config config/demo.toml --number '+33 1 84 88 00 00'" in text


async def test_demo_is_a_working_telephony_setup(sessionmaker):
    """The demo number has its E.164; Sales rings Alice then Bruno (in order, 20 s); both extensions
    can register with the documented demo secrets (digest HA1s for the default realm)."""
    await seed_demo(sessionmaker)
    async with sessionmaker() as session:
        number = await session.scalar(select(Number))
        group = await session.scalar(select(QueueGroup))
        trunk = await session.scalar(select(Trunk))
        employees = {e.extension: e for e in await session.scalars(select(Employee))}
    assert number.e164 == "+33184880000" and number.queue_group_id == group.id
    # T1/R4: it comes through the demo provider (SIPp on 127.0.0.1:5090) and is the default outbound number.
    assert (number.trunk_id, number.default_outbound) == (trunk.id, True)
    assert (trunk.kind, trunk.host, trunk.port, trunk.trust) == ("provider", "127.0.0.1", 5090, "digest")
    # Not trusted by source: that would trust every phone on the loopback as the provider.
    assert trunk.username == "demo-provider" and len(trunk.secret or "") >= 24
    assert (group.strategy, group.ring_time_s) == ("in_order", 20)
    assert [m.employee_id for m in sorted(group.members, key=lambda m: m.position)] == [
        employees["1001"].id, employees["1002"].id]
    for extension, secret in DEMO_SIP_SECRETS.items():
        employee = employees[extension]
        assert employee.sip_realm == "gateway"
        assert employee.sip_ha1_md5 == hashlib.md5(f"{extension}:gateway:{secret}".encode()).hexdigest()
        assert employee.sip_ha1_sha256 == hashlib.sha256(f"{extension}:gateway:{secret}".encode()).hexdigest()


async def test_demo_announcement_prints_no_secret(sessionmaker):
    text = (await seed_demo(sessionmaker)).announcement()
    assert not any(secret in text for secret in DEMO_SIP_SECRETS.values())
