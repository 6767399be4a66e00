"""After a successful write, the admin app tells the gateway which part of its configuration changed
(`app.state.on_config_change(topic)`), so the live routing directory reloads; a refused write tells nothing."""

from __future__ import annotations

import pytest


@pytest.fixture
def topics(app) -> list[str]:
    heard: list[str] = []
    app.state.on_config_change = heard.append
    return heard


async def test_each_write_names_its_topic(client, admin, topics):
    employee = (await client.post("/employees", headers=admin.headers, json={"name": "Ann", "extension": "301"})).json()
    await client.patch(f"/employees/{employee['id']}", headers=admin.headers, json={"name": "Anna"})
    group = (await client.post("/queue-groups", headers=admin.headers, json={"name": "G"})).json()
    await client.patch(f"/queue-groups/{group['id']}", headers=admin.headers, json={"ring_time_s": 25})
    number = (await client.post("/numbers", headers=admin.headers, json={
        "kind": "rented", "number": "+33184880000", "name": "L", "default_region": "FR"})).json()
    await client.patch(f"/numbers/{number['id']}", headers=admin.headers, json={"name": "Line"})
    await client.delete(f"/numbers/{number['id']}", headers=admin.headers)
    await client.delete(f"/queue-groups/{group['id']}", headers=admin.headers)
    source = (await client.post("/sources", headers=admin.headers, json={"code": "FAIR", "name": "Fair"})).json()
    await client.delete(f"/sources/{source['id']}", headers=admin.headers)
    await client.post("/pipelines", headers=admin.headers, json={"name": "Partners"})
    assert topics == ["employees", "employees", "queue_groups", "queue_groups", "numbers", "numbers", "numbers",
                      "queue_groups", "crm", "crm", "crm"]


async def test_a_refused_write_tells_nothing(client, admin, plain, topics):
    await client.post("/queue-groups", headers=plain.headers, json={"name": "G"})  # 403
    await client.post("/queue-groups", headers=admin.headers, json={"name": "G", "strategy": "random"})  # 422
    await client.post("/queue-groups", headers=admin.headers, json={
        "name": "G", "no_answer_action": "queue_group"})  # 422: no target
    await client.post("/numbers", headers=admin.headers, json={
        "kind": "rented", "number": "+33 0 12 34 56 78", "name": "L", "default_region": "FR"})  # 422
    await client.delete("/sources/1", headers=admin.headers)  # 409: standard
    assert topics == []


async def test_an_async_hook_is_awaited(app, client, admin):
    heard: list[str] = []

    async def reload(topic: str) -> None:
        heard.append(topic)

    app.state.on_config_change = reload
    response = await client.post("/employees", headers=admin.headers, json={"name": "Ann"})
    assert response.status_code == 201
    assert heard == ["employees"]
