"""Numbers on the call path: each number's E.164 is computed by the API (one indexed lookup per call),
and R1/T7's ring time of the known caller's responsible is a number setting."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.models import Number

LINE = {"kind": "rented", "name": "Paris", "default_region": "FR"}


async def test_number_e164_is_computed_from_national_and_international_forms(client, admin, sessionmaker):
    national = await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "01 84 88 00 00"})
    milan = await client.post("/numbers", headers=admin.headers,
                              json={**LINE, "number": "+39 02 1234 5678", "name": "Milano"})
    assert national.status_code == milan.status_code == 201, national.text + milan.text
    assert national.json()["e164"] == "+33184880000"
    assert milan.json()["e164"] == "+390212345678"
    async with sessionmaker() as session:
        stored = await session.scalar(sa.select(Number.e164).where(Number.id == national.json()["id"]))
    assert stored == "+33184880000"


async def test_number_that_is_possible_but_not_valid_is_422_saying_so(client, admin):
    # 10 digits like a French number, but the 00 range is not assigned: possible, not valid.
    response = await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "+33 0 12 34 56 78"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("number: '+33 0 12 34 56 78' is not a valid phone number in region FR")


async def test_same_number_in_another_spelling_is_409(client, admin):
    first = await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "+33184880000"})
    again = await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "01 84 88 00 00"})
    assert again.status_code == 409
    assert f"already configured as number {first.json()['id']} ('+33184880000')" in again.json()["detail"]


async def test_changing_number_or_region_recomputes_e164(client, admin):
    created = (await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "02 12 34 56 78"})).json()
    assert created["e164"] == "+33212345678"
    moved = await client.patch(f"/numbers/{created['id']}", headers=admin.headers, json={"default_region": "IT"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["e164"] == "+390212345678"
    renamed = await client.patch(f"/numbers/{created['id']}", headers=admin.headers, json={"name": "Milano"})
    assert renamed.json()["e164"] == "+390212345678"


async def test_patch_to_a_number_already_configured_is_409_and_changes_nothing(client, admin):
    await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "+33184880000"})
    other = (await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "+33184880001"})).json()
    clash = await client.patch(f"/numbers/{other['id']}", headers=admin.headers, json={"number": "01 84 88 00 00"})
    assert clash.status_code == 409
    assert (await client.get(f"/numbers/{other['id']}", headers=admin.headers)).json()["e164"] == "+33184880001"


async def test_r1_responsible_ring_time_defaults_to_20_s_and_can_change(client, admin):
    created = (await client.post("/numbers", headers=admin.headers, json={**LINE, "number": "+33184880000"})).json()
    assert created["responsible_ring_time_s"] == 20
    changed = await client.patch(f"/numbers/{created['id']}", headers=admin.headers,
                                 json={"responsible_ring_time_s": 35})
    assert changed.json()["responsible_ring_time_s"] == 35
    too_short = await client.patch(f"/numbers/{created['id']}", headers=admin.headers,
                                   json={"responsible_ring_time_s": 1})
    assert too_short.status_code == 422
    assert too_short.json()["detail"][0]["loc"] == ["body", "responsible_ring_time_s"]


async def test_numbers_created_in_code_get_their_e164_on_insert(sessionmaker):
    """The model computes e164 when the writer did not (seeds and tests that add rows directly)."""
    async with sessionmaker() as session:
        session.add(Number(kind="rented", number="01 42 68 53 00", name="Paris", default_region="FR"))
        await session.commit()
        assert await session.scalar(sa.select(Number.e164)) == "+33142685300"
