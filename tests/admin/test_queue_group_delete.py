"""Deleting a queue group a number still uses is refused (T10: the group gives new leads their
responsible; silently nulling the number's link would leave new leads with nobody)."""

from __future__ import annotations

NUMBER = {"kind": "rented", "name": "Line", "default_region": "FR"}


async def _group_with_numbers(client, admin, dids: list[str]) -> tuple[int, list[int]]:
    group = await client.post("/queue-groups", headers=admin.headers,
                              json={"name": "Sales", "member_ids": [admin.employee_id]})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    number_ids = []
    for did in dids:
        created = await client.post("/numbers", headers=admin.headers,
                                    json={**NUMBER, "number": did, "queue_group_id": group_id})
        assert created.status_code == 201, created.text
        number_ids.append(created.json()["id"])
    return group_id, number_ids


async def test_t10_deleting_a_queue_group_in_use_is_409_naming_its_numbers(client, admin):
    group_id, number_ids = await _group_with_numbers(client, admin, ["+33 1 84 88 00 01", "+33 1 84 88 00 02"])
    response = await client.delete(f"/queue-groups/{group_id}", headers=admin.headers)
    assert response.status_code == 409
    detail = response.json()["detail"]
    for number_id, did in zip(number_ids, ["+33 1 84 88 00 01", "+33 1 84 88 00 02"], strict=True):
        assert f"{number_id} ({did})" in detail
    assert "queue_group_id" in detail  # says how to fix it


async def test_t10_refused_queue_group_delete_changes_nothing(client, admin, manager):
    group_id, number_ids = await _group_with_numbers(client, admin, ["+33 1 84 88 00 03"])
    assert (await client.delete(f"/queue-groups/{group_id}", headers=manager.headers)).status_code == 409
    assert (await client.get(f"/queue-groups/{group_id}", headers=admin.headers)).json()["member_ids"] == [
        admin.employee_id]
    number = (await client.get(f"/numbers/{number_ids[0]}", headers=admin.headers)).json()
    assert number["queue_group_id"] == group_id


async def test_t10_queue_group_unused_after_reassignment_can_be_deleted(client, admin):
    group_id, number_ids = await _group_with_numbers(client, admin, ["+33 1 84 88 00 04"])
    moved = await client.patch(f"/numbers/{number_ids[0]}", headers=admin.headers, json={"queue_group_id": None})
    assert moved.status_code == 200 and moved.json()["queue_group_id"] is None
    assert (await client.delete(f"/queue-groups/{group_id}", headers=admin.headers)).status_code == 204
    assert (await client.get(f"/queue-groups/{group_id}", headers=admin.headers)).status_code == 404
