"""SPEC T2 on the admin API: who may read, create, change and delete numbers, and secrets never leave.

Every role is exercised: admin, employee with the manage-numbers right, plain employee, no token.
"""

from __future__ import annotations

import json

import pytest

SECRET = "trunk-s3cret-Pa55"

TRUNK = {"name": "Provider", "kind": "provider", "host": "sip.provider.example", "trust": "registration",
         "username": "paris", "secret": SECRET}
NUMBER = {
    "kind": "rented", "number": "+33 1 84 88 00 00", "name": "Paris main line", "default_region": "FR",
    "unknown_caller_action": "offer_in_card", "create_for": "all",
    "route_known_to_responsible": True, "change_responsible_on_transfer": True,
}


def assert_no_secret(response) -> None:
    """No trunk secret, in any form, in the response body or headers."""
    text = response.text + json.dumps(dict(response.headers))
    assert SECRET not in text
    assert '"secret"' not in text and '"trunk_password"' not in text  # not even the keys


@pytest.fixture
async def trunk_id(client, admin) -> int:
    created = await client.post("/trunks", headers=admin.headers, json=TRUNK)
    assert created.status_code == 201, created.text
    return created.json()["id"]


@pytest.fixture
def new_number(trunk_id) -> dict:
    """A number delivered by the provider trunk (which holds the secret)."""
    return {**NUMBER, "trunk_id": trunk_id}


@pytest.fixture
async def number_id(client, admin, new_number) -> int:
    created = await client.post("/numbers", headers=admin.headers, json=new_number)
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def test_t2_admin_creates_number_with_crm_settings(client, admin, new_number, trunk_id):
    response = await client.post("/numbers", headers=admin.headers, json=new_number)
    assert response.status_code == 201
    body = response.json()
    assert body["unknown_caller_action"] == "offer_in_card"
    assert body["create_for"] == "all"
    assert body["trunk_id"] == trunk_id
    assert body["source_id"] is not None  # defaults to the standard CALL source (T6)
    assert_no_secret(response)


async def test_t2_admin_updates_and_deletes_number(client, admin, number_id):
    updated = await client.patch(f"/numbers/{number_id}", headers=admin.headers, json={"create_for": "incoming"})
    assert updated.status_code == 200
    assert updated.json()["create_for"] == "incoming"
    assert_no_secret(updated)
    assert (await client.delete(f"/numbers/{number_id}", headers=admin.headers)).status_code == 204
    assert (await client.get(f"/numbers/{number_id}", headers=admin.headers)).status_code == 404


async def test_t2_number_manager_creates_and_changes_numbers(client, manager, new_number):
    created = await client.post("/numbers", headers=manager.headers, json=new_number)
    assert created.status_code == 201
    number_id = created.json()["id"]
    updated = await client.patch(f"/numbers/{number_id}", headers=manager.headers,
                                 json={"unknown_caller_action": "auto_lead", "trunk_id": None})
    assert updated.status_code == 200
    assert (updated.json()["unknown_caller_action"], updated.json()["trunk_id"]) == ("auto_lead", None)
    assert (await client.delete(f"/numbers/{number_id}", headers=manager.headers)).status_code == 204


async def test_t2_plain_employee_cannot_create_change_or_delete(client, plain, number_id, new_number):
    attempts = [
        await client.post("/numbers", headers=plain.headers, json={**new_number, "number": "+33184880001"}),
        await client.patch(f"/numbers/{number_id}", headers=plain.headers, json={"create_for": "outgoing"}),
        await client.delete(f"/numbers/{number_id}", headers=plain.headers),
    ]
    for response in attempts:
        assert response.status_code == 403
        assert "manage numbers" in response.json()["detail"]


async def test_t2_plain_employee_change_left_nothing(client, admin, plain, number_id):
    await client.patch(f"/numbers/{number_id}", headers=plain.headers, json={"create_for": "outgoing"})
    assert (await client.get(f"/numbers/{number_id}", headers=admin.headers)).json()["create_for"] == "all"


async def test_t2_plain_employee_reads_numbers_without_secrets(client, plain, number_id):
    listed = await client.get("/numbers", headers=plain.headers)
    one = await client.get(f"/numbers/{number_id}", headers=plain.headers)
    assert listed.status_code == one.status_code == 200
    assert [n["id"] for n in listed.json()["items"]] == [number_id]
    assert one.json()["unknown_caller_action"] == "offer_in_card"  # the CRM settings are readable
    assert_no_secret(listed)
    assert_no_secret(one)


async def test_t2_no_token_is_401_on_every_number_operation(client, number_id, new_number):
    attempts = [
        await client.get("/numbers"), await client.get(f"/numbers/{number_id}"),
        await client.post("/numbers", json=new_number),
        await client.patch(f"/numbers/{number_id}", json={"create_for": "incoming"}),
        await client.delete(f"/numbers/{number_id}"),
    ]
    assert [r.status_code for r in attempts] == [401] * 5


async def test_t2_secret_never_returned_to_any_role_by_any_number_operation(client, admin, manager, plain,
                                                                           new_number):
    responses = [await client.post("/numbers", headers=admin.headers, json=new_number)]
    number_id = responses[0].json()["id"]
    for user in (admin, manager, plain):
        responses += [await client.get("/numbers", headers=user.headers),
                      await client.get(f"/numbers/{number_id}", headers=user.headers)]
    for user in (admin, manager):
        responses.append(await client.patch(f"/numbers/{number_id}", headers=user.headers,
                                            json={"default_outbound": True, "name": "renamed"}))
    responses.append(await client.get("/openapi.json"))  # not even an example value
    assert len(responses) == 10
    for response in responses:
        assert response.status_code in (200, 201)
        if response.request.url.path != "/openapi.json":
            assert_no_secret(response)
        else:
            assert SECRET not in response.text


async def test_number_bad_region_says_what_to_write(client, admin, new_number):
    response = await client.post("/numbers", headers=admin.headers, json={**new_number, "default_region": "XX"})
    assert response.status_code == 422
    assert "unknown region code 'XX'" in response.text
    assert "ISO 3166" in response.text


async def test_number_unknown_queue_group_is_422(client, admin, new_number):
    response = await client.post("/numbers", headers=admin.headers, json={**new_number, "queue_group_id": 77})
    assert response.status_code == 422
    assert response.json()["detail"] == "queue_group_id: queue group 77 not found"


async def test_number_invalid_enum_lists_allowed_values(client, admin, new_number):
    response = await client.post("/numbers", headers=admin.headers,
                                 json={**new_number, "unknown_caller_action": "ring_forever"})
    assert response.status_code == 422
    assert "'auto_lead' or 'offer_in_card'" in response.text


async def test_number_same_did_in_another_form_is_409(client, admin, number_id, new_number):
    response = await client.post("/numbers", headers=admin.headers, json={**new_number, "number": "01 84 88 00 00"})
    assert response.status_code == 409
    assert f"number {number_id}" in response.json()["detail"]


async def test_number_that_is_not_a_phone_number_is_422(client, admin, new_number):
    response = await client.post("/numbers", headers=admin.headers, json={**new_number, "number": "+33 12"})
    assert response.status_code == 422
    assert "is not a valid phone number in region FR" in response.json()["detail"]


async def test_t2_plain_employee_does_not_see_the_trunk(client, plain, number_id):
    listed = await client.get("/numbers", headers=plain.headers)
    one = await client.get(f"/numbers/{number_id}", headers=plain.headers)
    for body in (listed.json()["items"][0], one.json()):
        assert body["trunk_id"] is None
    for response in (listed, one):
        assert '"paris"' not in response.text and "sip.provider.example" not in response.text


async def test_t2_admin_and_number_manager_see_the_trunk(client, admin, manager, number_id, trunk_id):
    for user in (admin, manager):
        one = (await client.get(f"/numbers/{number_id}", headers=user.headers)).json()
        listed = (await client.get("/numbers", headers=user.headers)).json()["items"][0]
        for body in (one, listed):
            assert body["trunk_id"] == trunk_id
