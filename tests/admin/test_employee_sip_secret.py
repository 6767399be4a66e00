"""Employees' SIP secrets: write-only, stored only as digest HA1s (RFC 7616: MD5 and SHA-256 of
"extension:realm:secret"), never in a response, an error or a log line."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
import sqlalchemy as sa

from gateway.storage.models import Employee

SECRET = "Phone-s3cret-9931"


def ha1s(user: str, realm: str, secret: str) -> tuple[str, str]:
    text = f"{user}:{realm}:{secret}".encode()
    return hashlib.md5(text).hexdigest(), hashlib.sha256(text).hexdigest()


def assert_secret_absent(response, extension: str = "1001") -> None:
    """Neither the secret, nor its HA1s (as good as the secret for digest), nor their keys."""
    text = response.text + json.dumps(dict(response.headers))
    assert SECRET not in text
    for ha1 in ha1s(extension, "gateway", SECRET):
        assert ha1 not in text
    assert '"sip_secret"' not in text
    assert "sip_ha1" not in text


async def _stored(sessionmaker, employee_id: int) -> tuple[str | None, str | None, str | None]:
    async with sessionmaker() as session:
        row = (await session.execute(sa.select(Employee.sip_realm, Employee.sip_ha1_md5, Employee.sip_ha1_sha256)
                                     .where(Employee.id == employee_id))).one()
        return tuple(row)


async def test_sip_secret_is_stored_as_ha1s_for_the_default_realm(client, admin, sessionmaker):
    response = await client.post("/employees", headers=admin.headers,
                                 json={"name": "Ann", "extension": "1001", "sip_secret": SECRET})
    assert response.status_code == 201, response.text
    assert_secret_absent(response)
    body = response.json()
    assert body["has_sip_secret"] is True and body["sip_realm"] == "gateway"
    assert await _stored(sessionmaker, body["id"]) == ("gateway", *ha1s("1001", "gateway", SECRET))


async def test_sip_secret_uses_the_realm_the_gateway_put_on_the_app(app, client, admin, sessionmaker):
    app.state.sip_realm = "pbx.example"
    body = (await client.post("/employees", headers=admin.headers,
                              json={"name": "Ann", "extension": "1001", "sip_secret": SECRET})).json()
    assert await _stored(sessionmaker, body["id"]) == ("pbx.example", *ha1s("1001", "pbx.example", SECRET))


async def test_sip_secret_never_appears_in_any_response(client, admin, caplog):
    caplog.set_level(logging.DEBUG)
    created = await client.post("/employees", headers=admin.headers,
                                json={"name": "Ann", "extension": "1001", "sip_secret": SECRET})
    employee_id = created.json()["id"]
    responses = [
        created,
        await client.patch(f"/employees/{employee_id}", headers=admin.headers, json={"sip_secret": SECRET}),
        await client.get(f"/employees/{employee_id}", headers=admin.headers),
        await client.get("/employees", headers=admin.headers),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert_secret_absent(response)
    assert SECRET not in caplog.text


@pytest.mark.parametrize(("body", "redacted"), [
    ({"extension": "1001", "sip_secret": SECRET}, True),  # name missing: the error quotes the whole body
    ({"name": "Ann", "extension": "1001", "sip_secret": SECRET + "\n"}, True),  # the secret itself is refused
    ({"name": "Ann", "extension": "1001", "sip_secret": SECRET, "typo": 1}, False),
])
async def test_a_refused_body_does_not_echo_the_sip_secret(client, admin, body, redacted):
    response = await client.post("/employees", headers=admin.headers, json=body)
    assert response.status_code == 422
    assert SECRET not in response.text
    assert ("***" in response.text) is redacted


async def test_sip_secret_without_extension_is_422(client, admin):
    response = await client.post("/employees", headers=admin.headers, json={"name": "Ann", "sip_secret": SECRET})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("sip_secret: the employee has no extension")


async def test_too_short_sip_secret_is_422(client, admin):
    response = await client.post("/employees", headers=admin.headers,
                                 json={"name": "Ann", "extension": "1001", "sip_secret": "short"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sip_secret"]
    assert "short" not in json.dumps(response.json()["detail"][0].get("input"))


async def test_new_extension_without_new_secret_clears_the_secret(client, admin, sessionmaker):
    employee_id = (await client.post("/employees", headers=admin.headers,
                                     json={"name": "Ann", "extension": "1001", "sip_secret": SECRET})).json()["id"]
    renamed = await client.patch(f"/employees/{employee_id}", headers=admin.headers, json={"name": "Anna"})
    assert renamed.json()["has_sip_secret"] is True  # other changes keep it
    moved = await client.patch(f"/employees/{employee_id}", headers=admin.headers, json={"extension": "1009"})
    assert moved.json()["has_sip_secret"] is False
    assert await _stored(sessionmaker, employee_id) == (None, None, None)


async def test_new_extension_with_new_secret_stores_ha1s_for_the_new_user(client, admin, sessionmaker):
    employee_id = (await client.post("/employees", headers=admin.headers,
                                     json={"name": "Ann", "extension": "1001", "sip_secret": SECRET})).json()["id"]
    moved = await client.patch(f"/employees/{employee_id}", headers=admin.headers,
                               json={"extension": "1009", "sip_secret": SECRET})
    assert moved.json()["has_sip_secret"] is True
    assert await _stored(sessionmaker, employee_id) == ("gateway", *ha1s("1009", "gateway", SECRET))


async def test_null_sip_secret_removes_it(client, admin, sessionmaker):
    employee_id = (await client.post("/employees", headers=admin.headers,
                                     json={"name": "Ann", "extension": "1001", "sip_secret": SECRET})).json()["id"]
    cleared = await client.patch(f"/employees/{employee_id}", headers=admin.headers, json={"sip_secret": None})
    assert cleared.json()["has_sip_secret"] is False and cleared.json()["sip_realm"] is None
    assert await _stored(sessionmaker, employee_id) == (None, None, None)


async def test_only_admins_set_sip_secrets(client, manager, plain):
    for user in (manager, plain):
        response = await client.patch(f"/employees/{plain.employee_id}", headers=user.headers,
                                      json={"sip_secret": SECRET})
        assert response.status_code == 403
        assert SECRET not in response.text
