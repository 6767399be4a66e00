"""SPEC T6 (standard and custom lead sources) and T12 (deal pipelines, one default) on the admin API."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.models import Deal, Lead, Pipeline

LINE = {"kind": "rented", "name": "Line", "default_region": "FR", "number": "+33184880000"}


async def _source(client, user, code="FAIR", name="Trade fair") -> dict:
    response = await client.post("/sources", headers=user.headers, json={"code": code, "name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def test_t6_custom_source_is_created_and_a_number_can_carry_it(client, manager):
    source = await _source(client, manager, code="fair_2026")
    assert (source["code"], source["name"], source["standard"]) == ("FAIR_2026", "Trade fair", False)
    number = await client.post("/numbers", headers=manager.headers, json={**LINE, "source_id": source["id"]})
    assert number.json()["source_id"] == source["id"]
    codes = [s["code"] for s in (await client.get("/sources", headers=manager.headers)).json()["items"]]
    assert codes == ["CALL", "EMAIL", "WEB", "OTHER", "FAIR_2026"]


async def test_t6_source_code_is_unique_and_well_formed(client, admin):
    await _source(client, admin)
    taken = await client.post("/sources", headers=admin.headers, json={"code": "fair", "name": "Other fair"})
    assert taken.status_code == 409 and "code 'FAIR' already exists" in taken.json()["detail"]
    bad = await client.post("/sources", headers=admin.headers, json={"code": "a b", "name": "x"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "code"]


async def test_t6_standard_source_can_be_renamed_but_keeps_its_code(client, admin):
    renamed = await client.patch("/sources/1", headers=admin.headers, json={"name": "Phone call"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Phone call"
    recoded = await client.patch("/sources/1", headers=admin.headers, json={"code": "PHONE"})
    assert recoded.status_code == 422
    assert recoded.json()["detail"].startswith("code: CALL is a standard source")


async def test_t6_standard_source_cannot_be_deleted(client, admin):
    response = await client.delete("/sources/1", headers=admin.headers)
    assert response.status_code == 409
    assert "source 1 (CALL) is a standard source" in response.json()["detail"]


async def test_t6_source_in_use_is_409_naming_numbers_and_items(client, admin, sessionmaker):
    source = await _source(client, admin)
    number = (await client.post("/numbers", headers=admin.headers, json={**LINE, "source_id": source["id"]})).json()
    async with sessionmaker() as session:
        lead = Lead(title="From the fair", source_id=source["id"])
        session.add(lead)
        await session.commit()
    response = await client.delete(f"/sources/{source['id']}", headers=admin.headers)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"number(s) {number['id']}" in detail and f"lead(s) {lead.id}" in detail
    async with sessionmaker() as session:
        await session.execute(sa.delete(Lead))
        await session.commit()
    await client.patch(f"/numbers/{number['id']}", headers=admin.headers, json={"source_id": 1})
    assert (await client.delete(f"/sources/{source['id']}", headers=admin.headers)).status_code == 204
    assert (await client.get(f"/sources/{source['id']}", headers=admin.headers)).status_code == 404


async def test_t6_plain_employees_read_sources_but_cannot_change_them(client, plain):
    assert (await client.get("/sources", headers=plain.headers)).status_code == 200
    assert (await client.post("/sources", headers=plain.headers, json={"code": "X", "name": "X"})).status_code == 403
    assert (await client.patch("/sources/1", headers=plain.headers, json={"name": "X"})).status_code == 403
    assert (await client.delete("/sources/4", headers=plain.headers)).status_code == 403


async def _defaults(client, admin) -> list[str]:
    items = (await client.get("/pipelines", headers=admin.headers)).json()["items"]
    return [p["name"] for p in items if p["is_default"]]


async def test_t12_pipelines_have_exactly_one_default(client, admin):
    partners = await client.post("/pipelines", headers=admin.headers, json={"name": "Partners"})
    assert partners.status_code == 201 and partners.json()["is_default"] is False
    assert await _defaults(client, admin) == ["General"]
    export = await client.post("/pipelines", headers=admin.headers, json={"name": "Export", "is_default": True})
    assert export.json()["is_default"] is True
    assert await _defaults(client, admin) == ["Export"]
    moved = await client.patch(f"/pipelines/{partners.json()['id']}", headers=admin.headers, json={"is_default": True})
    assert moved.json()["is_default"] is True
    assert await _defaults(client, admin) == ["Partners"]


async def test_t12_the_default_cannot_stop_being_it_or_be_deleted(client, admin):
    undefault = await client.patch("/pipelines/1", headers=admin.headers, json={"is_default": False})
    assert undefault.status_code == 422 and "make another pipeline the default" in undefault.json()["detail"]
    deleted = await client.delete("/pipelines/1", headers=admin.headers)
    assert deleted.status_code == 409 and "is the default pipeline" in deleted.json()["detail"]
    assert await _defaults(client, admin) == ["General"]


async def test_t12_pipeline_in_use_is_409_naming_deals_and_crm_settings(client, admin, sessionmaker):
    partners = (await client.post("/pipelines", headers=admin.headers, json={"name": "Partners"})).json()
    settings = (await client.get("/crm-settings", headers=admin.headers)).json()
    await client.put("/crm-settings", headers=admin.headers, json={**settings, "deal_pipeline_id": partners["id"]})
    async with sessionmaker() as session:
        deal = Deal(title="Big one", pipeline_id=partners["id"])
        session.add(deal)
        await session.commit()
    response = await client.delete(f"/pipelines/{partners['id']}", headers=admin.headers)
    assert response.status_code == 409
    assert "the CRM settings (deal_pipeline_id" in response.json()["detail"]
    assert f"deal(s) {deal.id}" in response.json()["detail"]
    async with sessionmaker() as session:
        assert await session.get(Pipeline, partners["id"]) is not None


async def test_t12_pipeline_names_are_unique(client, admin):
    response = await client.post("/pipelines", headers=admin.headers, json={"name": "General"})
    assert response.status_code == 409 and "pipeline named 'General' already exists (id 1)" in response.json()["detail"]


async def test_t12_only_admins_change_pipelines(client, manager):
    assert (await client.get("/pipelines", headers=manager.headers)).status_code == 200
    assert (await client.post("/pipelines", headers=manager.headers, json={"name": "P"})).status_code == 403
    assert (await client.patch("/pipelines/1", headers=manager.headers, json={"name": "P"})).status_code == 403
