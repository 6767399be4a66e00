"""`gateway run` serves the CRM admin API on its admin port, over a migrated, demo-seeded database.

Issue #3 items 6-8: the admin API lives in the gateway process, `make run` seeds a demo when the
database is new, and `gateway simulate call` prints the LinkPlan without writing anything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

from tests.integration.conftest import HOST, GatewayProcess

DEMO_NUMBER = "+33 1 84 88 00 00"


def _token(gateway: GatewayProcess) -> str:
    match = re.search(r"admin API token \(shown once, store it now\): (\S+)", gateway.log())
    assert match, gateway.log()
    return match.group(1)


def _call(gateway: GatewayProcess, method: str, path: str, token: str | None, body: dict | None = None):
    request = urllib.request.Request(
        f"http://{HOST}:{gateway.admin_port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_admin_api_needs_a_token(gateway: GatewayProcess) -> None:
    status, body = _call(gateway, "GET", "/numbers", None)
    assert status == 401
    assert body["detail"]


def test_t4a_demo_number_is_served_and_simulated_in_process(gateway: GatewayProcess) -> None:
    token = _token(gateway)
    status, numbers = _call(gateway, "GET", "/numbers", token)
    assert status == 200
    assert [n["number"] for n in numbers["items"]] == [DEMO_NUMBER]
    assert "trunk_password" not in numbers["items"][0]

    status, plan = _call(gateway, "POST", "/simulate/call", token,
                         {"number": DEMO_NUMBER, "from": "+33 6 98 76 54 32", "direction": "inbound"})
    assert status == 200
    assert plan["action"] == "create_lead"
    assert "T4a" in plan["rule_ids"] and "T10" in plan["rule_ids"]


def test_simulate_cli_prints_the_plan_and_writes_nothing(gateway: GatewayProcess) -> None:
    config = gateway.log_path.parent / "gateway.toml"
    token = _token(gateway)
    _, before = _call(gateway, "GET", "/items/lead", token)
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "simulate", "call", "--config", str(config),
         "--number", DEMO_NUMBER, "--from", "06 98 76 54 32"],
        capture_output=True, text=True, timeout=60, cwd=gateway.log_path.parent,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["action"] == "create_lead" and plan["responsible_id"] is not None
    _, after = _call(gateway, "GET", "/items/lead", token)
    assert after["total"] == before["total"]


def _created(answer: tuple[int, dict]) -> dict:
    status, body = answer
    assert status == 201, body
    return body


def test_t10_t11_deactivated_employee_is_never_made_responsible_and_t11_is_a_rule_id(
    gateway: GatewayProcess,
) -> None:
    """The reviewer's path: PATCH /employees/N {"active": false}, then POST /simulate/call."""
    token = _token(gateway)
    dora = _created(_call(gateway, "POST", "/employees", token, {"name": "Dora Vc"}))
    emil = _created(_call(gateway, "POST", "/employees", token, {"name": "Emil Vc"}))
    queue = _created(_call(gateway, "POST", "/queue-groups", token,
                           {"name": "VC inactive check", "member_ids": [dora["id"], emil["id"]]}))
    number = _created(_call(gateway, "POST", "/numbers", token, {
        "kind": "rented", "number": "+33 1 84 88 00 77", "name": "VC check", "default_region": "FR",
        "queue_group_id": queue["id"], "change_responsible_on_transfer": True}))
    simulate = {"number": "+33 1 84 88 00 77", "from": "+33 6 98 76 54 31", "direction": "inbound"}
    try:
        status, before = _call(gateway, "POST", "/simulate/call", token, simulate)
        assert status == 200 and before["responsible_id"] == dora["id"]
        status, _ = _call(gateway, "PATCH", f"/employees/{dora['id']}", token, {"active": False})
        assert status == 200
        status, plan = _call(gateway, "POST", "/simulate/call", token, simulate)
        assert status == 200
        assert plan["responsible_id"] == emil["id"]
        assert "T10" in plan["rule_ids"]
        assert "T11" in plan["rule_ids"] and plan["transfer_moves_responsible"] is True
        named = {line.split(":", 1)[0] for line in plan["explanation"] if not line.startswith("note:")}
        assert named == set(plan["rule_ids"])
    finally:
        _call(gateway, "DELETE", f"/numbers/{number['id']}", token)
        _call(gateway, "DELETE", f"/queue-groups/{queue['id']}", token)
        for employee in (dora, emil):
            _call(gateway, "PATCH", f"/employees/{employee['id']}", token, {"active": False})
