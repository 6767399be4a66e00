"""Employees, queue groups, CRM settings, the exception list, sources/pipelines and pagination."""

from __future__ import annotations


async def test_admin_creates_employee_with_normalised_phone_and_rights(client, admin):
    response = await client.post("/employees", headers=admin.headers, json={
        "name": "Chloé Dubois", "extension": "1003", "phones": ["06 12 34 56 78"], "emails": ["Chloe@Example.FR"],
        "default_region": "FR", "rights": [{"item_type": "lead", "view": "all", "edit": "own"}],
    })
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["phones"] == ["06 12 34 56 78"]
    assert body["rights"] == [{"item_type": "lead", "view": "all", "edit": "own"}]


async def test_employee_phone_without_region_must_be_international(client, admin):
    response = await client.post("/employees", headers=admin.headers,
                                 json={"name": "Dario", "phones": ["06 12 34 56 78"]})
    assert response.status_code == 422
    assert "phones[0]" in response.json()["detail"]
    assert "international form" in response.json()["detail"]


async def test_only_admins_manage_employees(client, manager, plain):
    for user in (manager, plain):
        assert (await client.post("/employees", headers=user.headers, json={"name": "X"})).status_code == 403
        assert (await client.patch(f"/employees/{user.employee_id}", headers=user.headers,
                                   json={"is_admin": True})).status_code == 403


async def test_duplicate_extension_is_409(client, admin, manager):
    response = await client.post("/employees", headers=admin.headers, json={"name": "Y", "extension": "101"})
    assert response.status_code == 409
    assert "extension 101" in response.json()["detail"]


async def test_last_admin_cannot_demote_themselves(client, admin):
    response = await client.patch(f"/employees/{admin.employee_id}", headers=admin.headers, json={"is_admin": False})
    assert response.status_code == 409
    assert "last active administrator" in response.json()["detail"]


async def test_t10_queue_group_keeps_member_order(client, admin, manager, plain):
    order = [plain.employee_id, admin.employee_id, manager.employee_id]
    created = await client.post("/queue-groups", headers=manager.headers, json={"name": "Support", "member_ids": order})
    assert created.status_code == 201
    group_id = created.json()["id"]
    assert (await client.get(f"/queue-groups/{group_id}", headers=plain.headers)).json()["member_ids"] == order
    reordered = await client.patch(f"/queue-groups/{group_id}", headers=admin.headers,
                                   json={"member_ids": order[::-1]})
    assert reordered.json()["member_ids"] == order[::-1]


async def test_queue_group_with_unknown_member_is_422(client, admin):
    response = await client.post("/queue-groups", headers=admin.headers, json={"name": "Ghosts", "member_ids": [999]})
    assert response.status_code == 422
    assert response.json()["detail"] == "member_ids: employee(s) 999 not found"


async def test_plain_employee_cannot_change_queue_groups(client, plain):
    response = await client.post("/queue-groups", headers=plain.headers, json={"name": "Mine"})
    assert response.status_code == 403


async def test_crm_settings_round_trip_admin_only(client, admin, manager):
    current = await client.get("/crm-settings", headers=admin.headers)
    assert current.status_code == 200
    assert current.json()["mode"] == "classic"
    wanted = {**current.json(), "mode": "simple", "deal_creation_mode": "company", "repeat_sales": True}
    assert (await client.put("/crm-settings", headers=admin.headers, json=wanted)).json() == wanted
    assert (await client.get("/crm-settings", headers=admin.headers)).json() == wanted
    assert (await client.put("/crm-settings", headers=manager.headers, json=wanted)).status_code == 403


async def test_crm_settings_unknown_pipeline_is_422(client, admin):
    body = (await client.get("/crm-settings", headers=admin.headers)).json()
    response = await client.put("/crm-settings", headers=admin.headers, json={**body, "deal_pipeline_id": 31})
    assert response.status_code == 422
    assert response.json()["detail"] == "deal_pipeline_id: pipeline 31 not found"


async def test_crm_settings_bad_mode_lists_allowed_values(client, admin):
    body = (await client.get("/crm-settings", headers=admin.headers)).json()
    response = await client.put("/crm-settings", headers=admin.headers, json={**body, "mode": "fancy"})
    assert response.status_code == 422
    assert "'classic' or 'simple'" in response.text


async def test_t8_exception_list_stores_normalised_values_and_refuses_duplicates(client, admin):
    phone = await client.post("/exceptions", headers=admin.headers,
                              json={"kind": "phone", "value": "06 12 34 56 78", "default_region": "FR"})
    assert phone.status_code == 201
    assert phone.json()["normalized"] == "+33612345678"
    again = await client.post("/exceptions", headers=admin.headers, json={"kind": "phone", "value": "+33612345678"})
    assert again.status_code == 409
    email = await client.post("/exceptions", headers=admin.headers, json={"kind": "email", "value": "Spam@Example.COM"})
    assert email.json()["normalized"] == "spam@example.com"
    listed = (await client.get("/exceptions", headers=admin.headers)).json()
    assert listed["total"] == 2
    assert (await client.delete(f"/exceptions/{phone.json()['id']}", headers=admin.headers)).status_code == 204
    assert (await client.get("/exceptions", headers=admin.headers)).json()["total"] == 1


async def test_t8_bad_email_exception_is_422(client, admin):
    response = await client.post("/exceptions", headers=admin.headers, json={"kind": "email", "value": "not-an-address"})
    assert response.status_code == 422
    assert "not an email address" in response.json()["detail"]


async def test_sources_and_pipelines_are_readable_by_everyone(client, plain):
    sources = (await client.get("/sources", headers=plain.headers)).json()["items"]
    assert {"CALL", "EMAIL", "WEB", "OTHER"} <= {s["code"] for s in sources}
    pipelines = (await client.get("/pipelines", headers=plain.headers)).json()["items"]
    assert [p["name"] for p in pipelines if p["is_default"]] == ["General"]


async def test_pagination_is_bounded_and_says_so(client, admin):
    too_big = await client.get("/sources?limit=1000", headers=admin.headers)
    assert too_big.status_code == 422
    assert "less than or equal to 200" in too_big.text
    page = (await client.get("/sources?limit=2&offset=1", headers=admin.headers)).json()
    assert (page["limit"], page["offset"], page["total"], len(page["items"])) == (2, 1, 4, 2)


async def test_huge_id_is_a_clean_422_not_a_database_overflow(client, admin):
    response = await client.get(f"/numbers/{2**70}", headers=admin.headers)
    assert response.status_code == 422


async def test_unknown_field_is_rejected_not_ignored(client, admin):
    response = await client.post("/queue-groups", headers=admin.headers, json={"name": "Q", "membres": [1]})
    assert response.status_code == 422
    assert "membres" in response.text


async def test_openapi_is_served(client):
    schema = (await client.get("/openapi.json")).json()
    assert {"/numbers", "/decisions/{interaction_key}", "/simulate/call", "/tokens"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
