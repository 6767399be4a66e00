"""Numbers point to trunks (SPEC T1) and employees to their outbound number (R4): unknown references
are 422, one default outbound number at most, and the old per-number trunk_* fields say where they went."""

from __future__ import annotations

import pytest

OLD_SECRET = "old-trunk-Pa55word"
NUMBER = {"kind": "rented", "number": "+33184880000", "name": "Paris", "default_region": "FR"}


async def _number(client, user, did: str, **extra) -> dict:
    response = await client.post("/numbers", headers=user.headers, json={**NUMBER, "number": did, "name": did, **extra})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize(("field", "value", "replacement"), [
    ("trunk_host", "sip.provider.example", "as host"), ("trunk_port", 5060, "as port"),
    ("trunk_username", "paris", "as username"), ("trunk_password", OLD_SECRET, "as secret"),
])
async def test_t1_old_trunk_fields_are_422_naming_the_replacement(client, admin, field, value, replacement):
    created = await client.post("/numbers", headers=admin.headers, json={**NUMBER, field: value})
    number = await _number(client, admin, "+33184880009")
    patched = await client.patch(f"/numbers/{number['id']}", headers=admin.headers, json={field: value})
    for response in (created, patched):
        assert response.status_code == 422
        message = response.json()["detail"][0]["msg"]
        assert f"{field} moved to trunks ({replacement}): create the trunk with POST /trunks and set trunk_id" in message
        assert OLD_SECRET not in response.text


async def test_t1_number_on_an_unknown_trunk_is_422(client, admin):
    created = await client.post("/numbers", headers=admin.headers, json={**NUMBER, "trunk_id": 77})
    assert created.status_code == 422
    assert created.json()["detail"] == "trunk_id: trunk 77 not found"
    number = await _number(client, admin, "+33184880001")
    patched = await client.patch(f"/numbers/{number['id']}", headers=admin.headers, json={"trunk_id": 77})
    assert patched.status_code == 422


async def test_t1_a_provider_trunk_carries_many_numbers(client, admin):
    trunk = (await client.post("/trunks", headers=admin.headers, json={
        "name": "Provider", "kind": "provider", "host": "sip.provider.example"})).json()
    first = await _number(client, admin, "+33184880001", trunk_id=trunk["id"])
    second = await _number(client, admin, "+33184880002", trunk_id=trunk["id"])
    assert first["trunk_id"] == second["trunk_id"] == trunk["id"]
    read = await client.get(f"/trunks/{trunk['id']}", headers=admin.headers)
    assert read.json()["number_ids"] == [first["id"], second["id"]]


async def _default_outbound_ids(client, user) -> list[int]:
    numbers = (await client.get("/numbers", headers=user.headers)).json()["items"]
    return [number["id"] for number in numbers if number["default_outbound"]]


async def test_r4_one_default_outbound_number_at_most(client, admin):
    first = await _number(client, admin, "+33184880001", default_outbound=True)
    second = await _number(client, admin, "+33184880002")
    assert await _default_outbound_ids(client, admin) == [first["id"]]
    patched = await client.patch(f"/numbers/{second['id']}", headers=admin.headers, json={"default_outbound": True})
    assert patched.status_code == 200 and patched.json()["default_outbound"] is True
    assert await _default_outbound_ids(client, admin) == [second["id"]]
    third = await _number(client, admin, "+33184880003", default_outbound=True)
    assert await _default_outbound_ids(client, admin) == [third["id"]]
    await client.patch(f"/numbers/{third['id']}", headers=admin.headers, json={"default_outbound": False})
    assert await _default_outbound_ids(client, admin) == []


async def test_r4_employee_outbound_number_must_exist(client, admin):
    created = await client.post("/employees", headers=admin.headers, json={"name": "Ann", "outbound_number_id": 77})
    assert created.status_code == 422
    assert created.json()["detail"] == "outbound_number_id: number 77 not found"
    employee = (await client.post("/employees", headers=admin.headers, json={"name": "Ann"})).json()
    patched = await client.patch(f"/employees/{employee['id']}", headers=admin.headers, json={"outbound_number_id": 77})
    assert patched.status_code == 422
    assert employee["outbound_number_id"] is None


async def test_r4_employee_outbound_number_is_set_cleared_and_gone_with_its_number(client, admin):
    number = await _number(client, admin, "+33184880001")
    employee = (await client.post("/employees", headers=admin.headers,
                                  json={"name": "Ann", "outbound_number_id": number["id"]})).json()
    assert employee["outbound_number_id"] == number["id"]
    url = f"/employees/{employee['id']}"
    assert (await client.patch(url, headers=admin.headers, json={"name": "Anna"})).json()["outbound_number_id"] == number["id"]
    assert (await client.patch(url, headers=admin.headers, json={"outbound_number_id": None})).json()[
        "outbound_number_id"] is None
    await client.patch(url, headers=admin.headers, json={"outbound_number_id": number["id"]})
    assert (await client.delete(f"/numbers/{number['id']}", headers=admin.headers)).status_code == 204
    assert (await client.get(url, headers=admin.headers)).json()["outbound_number_id"] is None
