"""Queue groups on the admin API: R2 strategies (old names still accepted, with a Warning), ring times per
group and per member, T10's position 1, and R3's no-answer chain (exactly one target, loops refused)."""

from __future__ import annotations

import pytest

from tests.admin.conftest import make_user


@pytest.fixture
async def staff(sessionmaker) -> list[int]:
    return [(await make_user(sessionmaker, name, extension=ext)).employee_id
            for name, ext in (("Ann", "201"), ("Bob", "202"), ("Cid", "203"))]


async def _group(client, user, **body) -> dict:
    response = await client.post("/queue-groups", headers=user.headers, json={"name": "Sales", **body})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("strategy", ["in_order", "evenly", "everybody"])
async def test_r2_strategies_are_stored_as_given_without_warning(client, admin, strategy):
    response = await client.post("/queue-groups", headers=admin.headers, json={"name": "G", "strategy": strategy})
    assert response.status_code == 201
    assert response.json()["strategy"] == strategy
    assert "warning" not in response.headers


@pytest.mark.parametrize(("old", "new"), [("sequential", "in_order"), ("simultaneous", "everybody")])
async def test_r2_old_strategy_names_still_work_with_a_warning_naming_the_new_one(client, admin, old, new):
    created = await client.post("/queue-groups", headers=admin.headers, json={"name": "G", "strategy": old})
    assert created.status_code == 201
    assert created.json()["strategy"] == new
    assert f"'{old}' is deprecated" in created.headers["warning"] and f"send '{new}'" in created.headers["warning"]
    patched = await client.patch(f"/queue-groups/{created.json()['id']}", headers=admin.headers,
                                 json={"strategy": old})
    assert patched.json()["strategy"] == new and new in patched.headers["warning"]


async def test_r2_unknown_strategy_is_422(client, admin):
    response = await client.post("/queue-groups", headers=admin.headers, json={"name": "G", "strategy": "random"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "strategy"]


async def test_r2_ring_times_per_group_and_member_and_t10_position_1_first(client, admin, staff):
    ann, bob, cid = staff
    group = await _group(client, admin, strategy="evenly", ring_time_s=30,
                         members=[{"employee_id": bob, "ring_time_s": 10}, {"employee_id": ann}])
    assert group["ring_time_s"] == 30
    assert group["member_ids"] == [bob, ann]
    assert group["members"] == [{"employee_id": bob, "position": 1, "ring_time_s": 10},
                                {"employee_id": ann, "position": 2, "ring_time_s": None}]
    reordered = await client.patch(f"/queue-groups/{group['id']}", headers=admin.headers, json={"member_ids": [cid, bob]})
    assert reordered.json()["members"] == [{"employee_id": cid, "position": 1, "ring_time_s": None},
                                           {"employee_id": bob, "position": 2, "ring_time_s": None}]
    assert (await _group(client, admin, name="Default"))["ring_time_s"] == 20


async def test_members_given_twice_is_422(client, admin, staff):
    response = await client.post("/queue-groups", headers=admin.headers, json={
        "name": "G", "member_ids": [staff[0]], "members": [{"employee_id": staff[1]}]})
    assert response.status_code == 422
    assert response.json()["detail"] == "members: give member_ids or members, not both"


async def test_r3_default_chain_hangs_up(client, admin):
    group = await _group(client, admin)
    assert (group["no_answer_action"], group["no_answer_group_id"], group["no_answer_employee_id"],
            group["no_answer_number"]) == ("hangup", None, None, None)


async def test_r3_each_action_takes_its_target(client, admin, staff):
    backup = await _group(client, admin, name="Backup")
    to_group = await _group(client, admin, no_answer_action="queue_group", no_answer_group_id=backup["id"])
    to_employee = await _group(client, admin, name="E", no_answer_action="employee", no_answer_employee_id=staff[2])
    outside = await _group(client, admin, name="O", no_answer_action="outside_number",
                           no_answer_number="+33 6 12 34 56 78")
    assert to_group["no_answer_group_id"] == backup["id"]
    assert to_employee["no_answer_employee_id"] == staff[2]
    assert outside["no_answer_number"] == "+33612345678"


@pytest.mark.parametrize(("body", "message"), [
    ({"no_answer_action": "queue_group"}, "no_answer_group_id: no_answer_action 'queue_group' needs no_answer_group_id"),
    ({"no_answer_action": "employee", "no_answer_number": "+33612345678"},
     "no_answer_number: no_answer_action 'employee' takes no_answer_employee_id"),
    ({"no_answer_employee_id": 1}, "no_answer_employee_id: no_answer_action 'hangup' takes no target"),
    ({"no_answer_action": "queue_group", "no_answer_group_id": 999}, "no_answer_group_id: queue group 999 not found"),
    ({"no_answer_action": "employee", "no_answer_employee_id": 999}, "no_answer_employee_id: employee 999 not found"),
    ({"no_answer_action": "outside_number", "no_answer_number": "+33 0 12 34 56 78"},
     "no_answer_number: '+33 0 12 34 56 78' is not a valid phone number"),
])
async def test_r3_a_chain_without_exactly_its_target_is_422(client, admin, body, message):
    response = await client.post("/queue-groups", headers=admin.headers, json={"name": "G", **body})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(message)
    assert (await client.get("/queue-groups", headers=admin.headers)).json()["total"] == 0


async def test_r3_changing_the_action_clears_the_old_target(client, admin, staff):
    group = await _group(client, admin, no_answer_action="employee", no_answer_employee_id=staff[0])
    changed = await client.patch(f"/queue-groups/{group['id']}", headers=admin.headers,
                                 json={"no_answer_action": "outside_number", "no_answer_number": "+39 02 1234 5678"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["no_answer_action"], body["no_answer_employee_id"], body["no_answer_number"]) == (
        "outside_number", None, "+390212345678")
    hung_up = (await client.patch(f"/queue-groups/{group['id']}", headers=admin.headers,
                                  json={"no_answer_action": "hangup"})).json()
    assert (hung_up["no_answer_employee_id"], hung_up["no_answer_number"]) == (None, None)


async def test_r3_a_chain_back_to_itself_is_refused_showing_the_loop(client, admin):
    group = await _group(client, admin)
    response = await client.patch(f"/queue-groups/{group['id']}", headers=admin.headers,
                                  json={"no_answer_action": "queue_group", "no_answer_group_id": group["id"]})
    assert response.status_code == 409
    assert f"the no-answer chain would loop: Sales ({group['id']}) → Sales ({group['id']})" in response.json()["detail"]
    assert (await client.get(f"/queue-groups/{group['id']}", headers=admin.headers)).json()["no_answer_action"] == "hangup"


async def test_r3_a_loop_through_three_groups_is_refused_and_the_chain_kept(client, admin, manager):
    a = await _group(client, admin, name="A")
    b = await _group(client, admin, name="B", no_answer_action="queue_group", no_answer_group_id=a["id"])
    c = await _group(client, admin, name="C", no_answer_action="queue_group", no_answer_group_id=b["id"])
    closing = await client.patch(f"/queue-groups/{a['id']}", headers=manager.headers,
                                 json={"no_answer_action": "queue_group", "no_answer_group_id": c["id"]})
    assert closing.status_code == 409
    assert f"A ({a['id']}) → C ({c['id']}) → B ({b['id']}) → A ({a['id']})" in closing.json()["detail"]
    assert (await client.get(f"/queue-groups/{a['id']}", headers=admin.headers)).json()["no_answer_group_id"] is None
    # The same groups with a chain that ends (D hangs up) are accepted: only the loop was refused.
    d = await _group(client, admin, name="D")
    fine = await client.patch(f"/queue-groups/{a['id']}", headers=manager.headers,
                              json={"no_answer_action": "queue_group", "no_answer_group_id": d["id"]})
    assert fine.status_code == 200 and fine.json()["no_answer_group_id"] == d["id"]


async def test_r3_deleting_a_group_another_chain_passes_to_is_409_naming_it(client, admin):
    backup = await _group(client, admin, name="Backup")
    front = await _group(client, admin, name="Front", no_answer_action="queue_group", no_answer_group_id=backup["id"])
    response = await client.delete(f"/queue-groups/{backup['id']}", headers=admin.headers)
    assert response.status_code == 409
    assert f"the no-answer chain of queue group {front['id']} (Front)" in response.json()["detail"]


async def test_plain_employee_cannot_configure_queue_groups(client, plain):
    response = await client.post("/queue-groups", headers=plain.headers, json={"name": "G"})
    assert response.status_code == 403
