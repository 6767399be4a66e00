"""Bearer tokens and roles of the admin API (issue #3 item 6)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from gateway.storage.models import ApiToken


async def test_missing_token_is_401_with_bearer_challenge(client, admin):
    response = await client.get("/numbers")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["detail"]


async def test_wrong_token_is_401(client, admin):
    response = await client.get("/numbers", headers={"Authorization": "Bearer gwt_not-a-real-token"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "invalid API token"


async def test_non_bearer_scheme_is_401(client, admin):
    response = await client.get("/numbers", headers={"Authorization": f"Basic {admin.token}"})
    assert response.status_code == 401


async def test_me_names_the_role(client, admin, manager, plain):
    for user, is_admin, manages in ((admin, True, False), (manager, False, True), (plain, False, False)):
        body = (await client.get("/me", headers=user.headers)).json()
        assert (body["employee_id"], body["is_admin"], body["can_manage_numbers"]) == (
            user.employee_id, is_admin, manages)


async def test_admin_creates_token_shown_once_and_stored_hashed(client, admin, plain, sessionmaker):
    created = await client.post("/tokens", headers=admin.headers,
                                json={"employee_id": plain.employee_id, "name": "softphone"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert (await client.get("/me", headers={"Authorization": f"Bearer {token}"})).json()["employee_id"] == (
        plain.employee_id)
    async with sessionmaker() as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.id == created.json()["id"]))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    listed = (await client.get("/tokens", headers=admin.headers)).json()["items"]
    assert listed and all("token" not in t and "token_hash" not in t for t in listed)
    assert token not in str(listed)


async def test_only_admins_create_tokens(client, manager, plain):
    for user in (manager, plain):
        response = await client.post("/tokens", headers=user.headers,
                                     json={"employee_id": user.employee_id, "name": "mine"})
        assert response.status_code == 403
        assert "administrator" in response.json()["detail"]


async def test_token_for_unknown_employee_is_422_naming_the_field(client, admin):
    response = await client.post("/tokens", headers=admin.headers, json={"employee_id": 4242, "name": "x"})
    assert response.status_code == 422
    assert response.json()["detail"] == "employee_id: employee 4242 not found"


async def test_revoked_token_is_401(client, admin, plain):
    me = await client.get("/me", headers=plain.headers)
    assert me.status_code == 200
    tokens = (await client.get("/tokens", headers=admin.headers)).json()["items"]
    plain_token_id = next(t["id"] for t in tokens if t["employee_id"] == plain.employee_id)
    assert (await client.delete(f"/tokens/{plain_token_id}", headers=admin.headers)).status_code == 200
    response = await client.get("/me", headers=plain.headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_deactivated_employee_token_is_401(client, admin, plain):
    changed = await client.patch(f"/employees/{plain.employee_id}", headers=admin.headers, json={"active": False})
    assert changed.status_code == 200
    response = await client.get("/me", headers=plain.headers)
    assert response.status_code == 401
    assert "deactivated" in response.json()["detail"]
