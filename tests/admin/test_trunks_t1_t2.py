"""/trunks (SPEC T1) and T2 on it: only admins and number managers touch trunks, the secret never
leaves (no answer, no 422 echo), a trunk carrying numbers stays, bad settings say what to fix."""

from __future__ import annotations

import json
import re

import pytest

SECRET = "trunk-s3cret-Pa55"
PROVIDER = {"name": "Provider", "kind": "provider", "host": "sip.provider.example", "trust": "registration",
            "username": "main", "secret": SECRET}


def assert_no_secret(response) -> None:
    """The secret in no form: a 422 may name the field, and shows what was sent in it as ***."""
    text = response.text + json.dumps(dict(response.headers))
    assert SECRET not in text
    assert re.search(r'"secret":\s*"(?!\*\*\*")', text) is None


async def _create(client, user, **changes) -> dict:
    response = await client.post("/trunks", headers=user.headers, json={**PROVIDER, **changes})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def trunk(client, admin) -> dict:
    return await _create(client, admin)


async def _number_on(client, user, trunk_id: int | None, did: str = "+33184880000", **extra) -> dict:
    response = await client.post("/numbers", headers=user.headers, json={
        "kind": "rented", "number": did, "name": did, "default_region": "FR", "trunk_id": trunk_id, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def test_t1_trunk_is_created_with_defaults_and_read_back(client, admin, trunk):
    assert {key: trunk[key] for key in ("name", "kind", "host", "port", "transport", "trust", "username")} == {
        "name": "Provider", "kind": "provider", "host": "sip.provider.example", "port": 5060, "transport": "udp",
        "trust": "registration", "username": "main"}
    assert (trunk["has_secret"], trunk["number_headers"], trunk["caller_id_format"], trunk["register_expires"],
            trunk["deny_patterns"], trunk["enabled"], trunk["number_ids"], trunk["registration"]) == (
        True, ["request_uri", "to"], "e164_plus", 3600, [], True, [], None)
    read = await client.get(f"/trunks/{trunk['id']}", headers=admin.headers)
    assert read.json() == trunk
    listed = await client.get("/trunks", headers=admin.headers)
    assert listed.json()["items"] == [trunk] and listed.json()["total"] == 1


async def test_t1_trunk_patch_changes_only_what_is_sent(client, admin, trunk):
    response = await client.patch(f"/trunks/{trunk['id']}", headers=admin.headers, json={
        "port": 5080, "transport": "tcp", "number_headers": ["p_called_party_id", "request_uri"],
        "caller_id_format": "national", "deny_patterns": [r"^\+3311[25]$"], "register_expires": 600,
        "host": "192.0.2.7"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["port"], body["transport"], body["number_headers"], body["caller_id_format"],
            body["deny_patterns"], body["register_expires"], body["host"]) == (
        5080, "tcp", ["p_called_party_id", "request_uri"], "national", [r"^\+3311[25]$"], 600, "192.0.2.7")
    assert (body["name"], body["username"], body["has_secret"]) == ("Provider", "main", True)


async def test_t1_trunk_secret_null_clears_it_only_when_the_trust_needs_none(client, admin, trunk):
    refused = await client.patch(f"/trunks/{trunk['id']}", headers=admin.headers, json={"secret": None})
    assert refused.status_code == 422
    assert "trust 'registration' needs a username and a secret" in refused.json()["detail"]
    cleared = await client.patch(f"/trunks/{trunk['id']}", headers=admin.headers,
                                 json={"secret": None, "username": None, "trust": "source"})
    assert cleared.status_code == 200
    assert (cleared.json()["has_secret"], cleared.json()["username"]) == (False, None)


async def test_t1_trunk_delete_then_gone(client, admin, trunk):
    assert (await client.delete(f"/trunks/{trunk['id']}", headers=admin.headers)).status_code == 204
    assert (await client.get(f"/trunks/{trunk['id']}", headers=admin.headers)).status_code == 404


async def test_t1_deleting_a_trunk_that_carries_numbers_is_409_naming_them(client, admin, trunk):
    number = await _number_on(client, admin, trunk["id"])
    response = await client.delete(f"/trunks/{trunk['id']}", headers=admin.headers)
    assert response.status_code == 409
    assert f"carries numbers {number['id']} (+33184880000)" in response.json()["detail"]
    read = await client.get(f"/trunks/{trunk['id']}", headers=admin.headers)
    assert read.json()["number_ids"] == [number["id"]]
    await client.patch(f"/numbers/{number['id']}", headers=admin.headers, json={"trunk_id": None})
    assert (await client.delete(f"/trunks/{trunk['id']}", headers=admin.headers)).status_code == 204


async def test_t1_trunk_name_is_unique(client, admin, trunk):
    response = await client.post("/trunks", headers=admin.headers, json={**PROVIDER, "host": "other.example"})
    assert response.status_code == 409
    assert f"already used by trunk {trunk['id']}" in response.json()["detail"]


@pytest.mark.parametrize(("change", "says"), [
    ({"host": "bad host!"}, "neither a host name"),
    ({"host": "[::1]"}, "neither a host name"),
    ({"port": 0}, "greater than or equal to 1"),
    ({"port": 65536}, "less than or equal to 65535"),
    ({"transport": "tls"}, "'udp' or 'tcp'"),
    ({"trust": "digest", "secret": None}, "trust 'digest' needs a username and a secret"),
    ({"trust": "registration", "username": None}, "trust 'registration' needs a username and a secret"),
    ({"number_headers": ["to", "to"]}, "each header at most once"),
    ({"number_headers": ["from"]}, "'request_uri', 'to', 'p_called_party_id' or 'diversion'"),
    ({"number_headers": []}, "at least 1 item"),
    ({"deny_patterns": [r"^\+33", "^(112"]}, "'^(112' is not a valid regular expression"),
    ({"register_expires": 59}, "greater than or equal to 60"),
    ({"register_expires": 86401}, "less than or equal to 86400"),
    ({"kind": "carrier"}, "'provider' or 'pbx'"),
])
async def test_t1_bad_trunk_settings_are_422_saying_what_to_fix(client, admin, change, says):
    response = await client.post("/trunks", headers=admin.headers, json={**PROVIDER, **change})
    assert response.status_code == 422
    assert says in response.text
    assert_no_secret(response)


async def test_t1_ipv6_host_is_accepted(client, admin):
    assert (await _create(client, admin, host="2001:db8::5"))["host"] == "2001:db8::5"


async def test_t2_plain_employee_gets_403_on_every_trunk_route(client, plain, trunk):
    attempts = [
        await client.get("/trunks", headers=plain.headers),
        await client.get(f"/trunks/{trunk['id']}", headers=plain.headers),
        await client.post("/trunks", headers=plain.headers, json={**PROVIDER, "name": "Other"}),
        await client.patch(f"/trunks/{trunk['id']}", headers=plain.headers, json={"port": 5070}),
        await client.delete(f"/trunks/{trunk['id']}", headers=plain.headers),
    ]
    assert [r.status_code for r in attempts] == [403] * 5
    for response in attempts:
        assert "manage numbers" in response.json()["detail"]
        assert_no_secret(response)
        assert "sip.provider.example" not in response.text


async def test_t2_no_token_is_401_on_every_trunk_route(client, trunk):
    attempts = [await client.get("/trunks"), await client.get(f"/trunks/{trunk['id']}"),
                await client.post("/trunks", json=PROVIDER),
                await client.patch(f"/trunks/{trunk['id']}", json={"port": 5070}),
                await client.delete(f"/trunks/{trunk['id']}")]
    assert [r.status_code for r in attempts] == [401] * 5


async def test_t2_number_manager_manages_trunks(client, manager):
    created = await _create(client, manager, name="Managed")
    changed = await client.patch(f"/trunks/{created['id']}", headers=manager.headers, json={"enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert (await client.get("/trunks", headers=manager.headers)).json()["total"] == 1
    assert (await client.delete(f"/trunks/{created['id']}", headers=manager.headers)).status_code == 204


async def test_t2_trunk_secret_never_in_any_answer(client, admin, manager):
    responses = [await client.post("/trunks", headers=admin.headers, json=PROVIDER)]
    trunk_id = responses[0].json()["id"]
    for user in (admin, manager):
        responses += [await client.get("/trunks", headers=user.headers),
                      await client.get(f"/trunks/{trunk_id}", headers=user.headers),
                      await client.patch(f"/trunks/{trunk_id}", headers=user.headers,
                                         json={"secret": SECRET, "name": f"renamed by {user.employee_id}"})]
    refused = [
        await client.post("/trunks", headers=admin.headers, json={**PROVIDER, "name": "X", "port": 0}),
        await client.post("/trunks", headers=admin.headers, json={**PROVIDER, "name": "X", "secret": SECRET + "\n"}),
        await client.post("/trunks", headers=admin.headers, json={**PROVIDER, "name": "X", "secret": SECRET * 20}),
        await client.patch(f"/trunks/{trunk_id}", headers=admin.headers, json={"secret": SECRET, "port": "x"}),
        await client.post("/trunks", headers=admin.headers, json={**PROVIDER, "name": "X", "surprise": 1}),
        await client.post("/trunks", headers=admin.headers, json=[PROVIDER]),
    ]
    assert [r.status_code for r in responses] == [201] + [200] * 6
    assert [r.status_code for r in refused] == [422] * 6
    for response in responses + refused:
        assert_no_secret(response)
    assert SECRET not in (await client.get("/openapi.json")).text


async def test_t1_trunk_answer_carries_the_registration_state(app, client, admin, trunk):
    class Registrations:
        def status(self, trunk_id: int) -> dict | None:
            return {"state": "registered", "trunk": trunk_id} if trunk_id == trunk["id"] else None

    app.state.trunk_registrations = Registrations()
    other = await _create(client, admin, name="PBX", kind="pbx", trust="source", username=None, secret=None)
    assert (await client.get(f"/trunks/{trunk['id']}", headers=admin.headers)).json()["registration"] == {
        "state": "registered", "trunk": trunk["id"]}
    assert other["registration"] is None


async def test_t1_every_trunk_change_reloads_the_configuration(app, client, admin):
    heard: list[str] = []
    app.state.on_config_change = heard.append
    created = await _create(client, admin)
    await client.patch(f"/trunks/{created['id']}", headers=admin.headers, json={"port": 5070})
    await client.patch(f"/trunks/{created['id']}", headers=admin.headers, json={"port": 0})  # 422: nothing
    await client.delete(f"/trunks/{created['id']}", headers=admin.headers)
    assert heard == ["trunks", "trunks", "trunks"]
