"""CRM items through the API: create, read, convert (T13), close, with rights decided by crm_bridge.rights."""

from __future__ import annotations

import pytest

from tests.admin.conftest import make_user


@pytest.fixture
async def lead(client, plain) -> dict:
    response = await client.post("/items/lead", headers=plain.headers,
                                 json={"title": "Caller +33612345678", "phones": ["+33 6 12 34 56 78"]})
    assert response.status_code == 201, response.text
    return response.json()


async def test_own_right_creates_lead_as_its_responsible(lead, plain):
    assert lead["responsible_id"] == plain.employee_id
    assert lead["status"] == "active"
    assert lead["phones"] == ["+33 6 12 34 56 78"]


async def test_own_right_cannot_create_for_someone_else(client, plain, admin):
    response = await client.post("/items/lead", headers=plain.headers,
                                 json={"title": "Not mine", "responsible_id": admin.employee_id})
    assert response.status_code == 403
    assert "edit" in response.json()["detail"]


async def test_no_right_on_deals_is_403_on_list_and_create(client, plain):
    assert (await client.get("/items/deal", headers=plain.headers)).status_code == 403
    assert (await client.post("/items/deal", headers=plain.headers, json={"title": "D"})).status_code == 403


async def test_own_view_lists_only_own_items(client, sessionmaker, lead, admin):
    await client.post("/items/lead", headers=admin.headers, json={"title": "Admin's lead"})
    colleague = await make_user(sessionmaker, "Colleague", rights={"lead": ("own", "own")})
    assert (await client.get("/items/lead", headers=colleague.headers)).json()["total"] == 0
    assert (await client.get(f"/items/lead/{lead['id']}", headers=colleague.headers)).status_code == 403
    assert (await client.get("/items/lead", headers=admin.headers)).json()["total"] == 2


async def test_t13_convert_lead_into_contact_and_deal(client, admin, lead):
    response = await client.post(f"/items/lead/{lead['id']}/convert", headers=admin.headers,
                                 json={"to": ["contact", "deal"]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["contact"]["type"] == "contact" and result["deal"]["type"] == "deal"
    assert result["company"] is None
    converted = (await client.get(f"/items/lead/{lead['id']}", headers=admin.headers)).json()
    assert converted["status"] == "converted"
    contact = (await client.get(f"/items/contact/{result['contact']['id']}", headers=admin.headers)).json()
    assert contact["phones"] == lead["phones"]
    again = await client.post(f"/items/lead/{lead['id']}/convert", headers=admin.headers, json={"to": ["contact"]})
    assert again.status_code == 422
    assert "only an active lead" in again.json()["detail"]


async def test_t13_convert_target_must_be_contact_company_or_deal(client, admin, lead):
    response = await client.post(f"/items/lead/{lead['id']}/convert", headers=admin.headers, json={"to": ["lead"]})
    assert response.status_code == 422
    assert "'contact', 'company' or 'deal'" in response.text


async def test_close_lead_then_closing_again_is_422(client, plain, lead):
    closed = await client.post(f"/items/lead/{lead['id']}/close", headers=plain.headers)
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    again = await client.post(f"/items/lead/{lead['id']}/close", headers=plain.headers)
    assert again.status_code == 422


async def test_contacts_are_not_closed(client, admin):
    contact = (await client.post("/items/contact", headers=admin.headers, json={"name": "Zoé"})).json()
    response = await client.post(f"/items/contact/{contact['id']}/close", headers=admin.headers)
    assert response.status_code == 422
    assert "only leads and deals" in response.json()["detail"]


async def test_missing_item_is_404(client, admin):
    response = await client.get("/items/deal/987", headers=admin.headers)
    assert response.status_code == 404
    assert "no deal with id 987" in response.json()["detail"]


async def test_bad_phone_on_item_is_422(client, admin):
    response = await client.post("/items/company", headers=admin.headers, json={"name": "ACME", "phones": ["call me"]})
    assert response.status_code == 422
    assert "not a phone number" in response.json()["detail"]


async def test_deal_in_unknown_pipeline_is_422(client, admin):
    response = await client.post("/items/deal", headers=admin.headers, json={"title": "Big", "pipeline_id": 55})
    assert response.status_code == 422
    assert response.json()["detail"] == "pipeline_id: pipeline 55 not found"
