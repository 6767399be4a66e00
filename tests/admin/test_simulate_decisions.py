"""Dry run (`POST /simulate/call`, `gateway simulate call`) and `GET /decisions/{interaction}` (SPEC C1)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from gateway import simulate as simulate_cli
from gateway.crm_bridge.call_hooks import plan_call
from gateway.storage.models import metadata

CALLER = "+33 6 12 34 56 78"


@pytest.fixture
async def demo_number(client, admin, manager, plain) -> dict:
    group = await client.post("/queue-groups", headers=admin.headers,
                              json={"name": "Sales", "member_ids": [plain.employee_id, manager.employee_id]})
    number = await client.post("/numbers", headers=admin.headers, json={
        "kind": "rented", "number": "+33 1 84 88 00 00", "name": "Main", "default_region": "FR",
        "queue_group_id": group.json()["id"], "create_for": "all"})
    assert number.status_code == 201
    return number.json()


async def row_counts(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        return {t.name: await session.scalar(select(func.count()).select_from(t)) for t in metadata.sorted_tables}


async def test_t4_t10_simulate_new_caller_plans_a_lead_for_first_queue_member(client, manager, plain, demo_number):
    response = await client.post("/simulate/call", headers=manager.headers,
                                 json={"number": "01 84 88 00 00", "from": CALLER, "direction": "inbound"})
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["action"] == "create_lead"
    assert plan["create"] == ["lead"]
    assert plan["responsible_id"] == plain.employee_id
    assert plan["source_id"] == demo_number["source_id"]
    assert {"T4a", "T10"} <= set(plan["rule_ids"])  # T4 scenario (a): a lead at once
    assert len(plan["explanation"]) >= len(plan["rule_ids"])


async def test_simulate_writes_nothing(client, admin, demo_number, sessionmaker):
    before = await row_counts(sessionmaker)
    for direction in ("inbound", "outbound"):
        response = await client.post("/simulate/call", headers=admin.headers,
                                     json={"number": demo_number["number"], "from": CALLER, "direction": direction,
                                           "employee_id": admin.employee_id})
        assert response.status_code == 200
    assert await row_counts(sessionmaker) == before
    assert before["decisions"] == before["outbox_entries"] == before["leads"] == 0


async def test_simulate_answers_what_the_real_call_gets(client, admin, demo_number, sessionmaker):
    simulated = (await client.post("/simulate/call", headers=admin.headers,
                                   json={"number": demo_number["number"], "from": CALLER})).json()
    async with sessionmaker() as session:
        real = await plan_call(session, call_id="abc@host", number=demo_number["number"], party_raw=CALLER,
                               direction="inbound")
        await session.commit()
    assert (simulated["action"], simulated["rule_ids"], simulated["responsible_id"]) == (
        real.action, list(real.rule_ids), real.responsible_id)


async def test_t10_simulated_outbound_call_makes_the_placing_employee_responsible(
    client, admin, plain, demo_number
):
    response = await client.post("/simulate/call", headers=admin.headers, json={
        "number": demo_number["number"], "from": CALLER, "direction": "outbound", "employee_id": plain.employee_id})
    assert response.status_code == 200, response.text
    assert response.json()["responsible_id"] == plain.employee_id


async def test_simulated_outbound_call_without_its_employee_is_422(client, admin, demo_number):
    response = await client.post("/simulate/call", headers=admin.headers, json={
        "number": demo_number["number"], "from": CALLER, "direction": "outbound"})
    assert response.status_code == 422
    assert "employee_id" in response.json()["detail"]


async def test_simulate_unknown_number_is_422(client, admin, demo_number):
    response = await client.post("/simulate/call", headers=admin.headers, json={"number": "+390612345678", "from": CALLER})
    assert response.status_code == 422
    assert "is not one of the gateway's numbers" in response.json()["detail"]


async def test_simulate_is_for_admins_and_number_managers(client, plain, demo_number):
    response = await client.post("/simulate/call", headers=plain.headers,
                                 json={"number": demo_number["number"], "from": CALLER})
    assert response.status_code == 403


async def test_c1_decision_of_a_real_call_is_returned_with_rule_ids(client, admin, demo_number, sessionmaker):
    async with sessionmaker() as session:
        plan = await plan_call(session, call_id="a84b4c76e66710@pc33.example.com", number=demo_number["number"],
                               party_raw=CALLER, direction="inbound")
        await session.commit()
    response = await client.get("/decisions/call:a84b4c76e66710@pc33.example.com", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["channel"] == "call"
    assert body["rule_ids"] == list(plan.rule_ids) == body["plan"]["rule_ids"]
    assert body["plan"]["action"] == plan.action
    assert [line.split(":")[0] for line in body["explanation"][: len(plan.rule_ids)]] == list(plan.rule_ids)


async def test_c1_unknown_decision_is_404_saying_what_the_key_is(client, admin):
    response = await client.get("/decisions/call:nope@nowhere", headers=admin.headers)
    assert response.status_code == 404
    assert "no decision is stored for 'call:nope@nowhere'" in response.json()["detail"]
    assert "call:<Call-ID>" in response.json()["detail"]


async def test_decisions_need_a_token(client):
    assert (await client.get("/decisions/call:x")).status_code == 401


async def test_cli_simulate_prints_the_plan_and_writes_nothing(demo_number, db_url, sessionmaker, capsys):
    before = await row_counts(sessionmaker)
    args = ["call", "--number", demo_number["number"], "--from", CALLER, "--database", db_url]
    # The CLI runs its own event loop (asyncio.run), so it is driven from a worker thread here.
    import asyncio

    code = await asyncio.to_thread(simulate_cli.main, args)
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["action"] == "create_lead"
    assert plan["rule_ids"] and plan["explanation"]
    assert await row_counts(sessionmaker) == before


async def test_cli_simulate_unknown_number_exits_2_with_message(demo_number, db_url, capsys):
    import asyncio

    code = await asyncio.to_thread(simulate_cli.main, ["call", "--number", "+4930123456", "--from", CALLER,
                                                       "--database", db_url])
    assert code == 2
    assert "is not one of the gateway's numbers" in capsys.readouterr().err


def test_cli_simulate_missing_database_creates_no_file(tmp_path, capsys):
    target = tmp_path / "absent.db"
    code = simulate_cli.main(["call", "--number", "1", "--from", "2", "--database", f"sqlite:///{target}"])
    assert code == 2
    assert "no gateway schema" in capsys.readouterr().err
    assert not target.exists()


def test_cli_simulate_never_prints_the_database_password(fresh_pg_url, capsys):
    """A real PostgreSQL database without the gateway schema; the server trusts local users, so the
    password in the URL is accepted and ignored — it must still not reach the terminal."""
    from sqlalchemy.engine import make_url

    url = make_url(fresh_pg_url(migrated=False)).set(password="s3cret-pw").render_as_string(hide_password=False)
    code = simulate_cli.main(["call", "--number", "1", "--from", "2", "--database", url])
    err = capsys.readouterr().err
    assert code == 2
    assert "no gateway schema" in err
    assert "s3cret-pw" not in err


def test_cli_simulate_unreachable_database_exits_2_without_traceback_or_password(capsys):
    import socket

    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        url = f"postgresql://gw:s3cret-pw@127.0.0.1:{port}/gateway"
        code = simulate_cli.main(["call", "--number", "1", "--from", "2", "--database", url])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: cannot reach the database")
    assert "s3cret-pw" not in err
