"""SPEC R7 on the admin API: the call log, its filters, the items a call created or attached, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.crm_bridge.linking import ItemRef, LinkPlan
from gateway.storage import call_log
from gateway.storage.models import (
    Activity,
    ActivityBinding,
    Contact,
    Decision,
    IdempotencyKey,
    Lead,
    Number,
)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


async def _log(sessionmaker, key: str, *, minutes: int, party_raw: str, party_e164: str | None,
               number: str = "+33184880000", number_id: int | None = None, routing: dict | None = None) -> None:
    async with sessionmaker() as session:
        await call_log.record_start(
            session, key=key, call_id=key.removeprefix("call:"), direction="inbound", number_id=number_id,
            number=number, party_raw=party_raw, party_e164=party_e164, started_at=T0 + timedelta(minutes=minutes),
            routing=routing or {"rule_ids": ["R2.in_order"], "notes": []},
        )
        await session.commit()


@pytest.fixture
async def calls(sessionmaker) -> dict[str, int]:
    """Three calls: two to the Paris number (one anonymous), one to a number that matched nothing."""
    async with sessionmaker() as session:
        paris = Number(kind="rented", number="01 84 88 00 00", name="Paris", default_region="FR")
        session.add(paris)
        await session.commit()
    await _log(sessionmaker, "call:a@pbx", minutes=0, party_raw="sip:0612345678@trunk", party_e164="+33612345678",
               number_id=paris.id)
    await _log(sessionmaker, "call:b@pbx", minutes=10, party_raw="sip:anonymous@anonymous.invalid", party_e164=None,
               number_id=paris.id)
    await _log(sessionmaker, "call:c@pbx", minutes=20, party_raw="sip:+390212345678@trunk",
               party_e164="+390212345678", number="5555")
    return {"paris": paris.id}


async def _ids(client, user, **params) -> list[str]:
    response = await client.get("/calls", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return [c["call_id"] for c in response.json()["items"]]


async def test_r7_calls_are_listed_newest_first_and_paged(client, admin, calls):
    assert await _ids(client, admin) == ["c@pbx", "b@pbx", "a@pbx"]
    page = (await client.get("/calls", headers=admin.headers, params={"limit": 1, "offset": 1})).json()
    assert (page["total"], [c["call_id"] for c in page["items"]]) == (3, ["b@pbx"])


@pytest.mark.parametrize("number", ["+33184880000", "33184880000", "01 84 88 00 00"])
async def test_r7_filter_by_gateway_number_in_any_form(client, admin, calls, number):
    assert await _ids(client, admin, number=number) == ["b@pbx", "a@pbx"]


async def test_r7_filter_by_the_dialled_text_of_an_unmatched_call(client, admin, calls):
    assert await _ids(client, admin, number="5555") == ["c@pbx"]


@pytest.mark.parametrize(("party", "expected"), [
    ("+33612345678", ["a@pbx"]), ("33612345678", ["a@pbx"]), ("0612345678", ["a@pbx"]),
    ("anonymous", ["b@pbx"]), ("390212345678", ["c@pbx"]), ("+44 20 7946 0000", []),
])
async def test_r7_filter_by_party_as_e164_or_as_signalled(client, admin, calls, party, expected):
    assert await _ids(client, admin, party=party) == expected


async def test_r7_filter_by_time_range_and_call_id(client, admin, calls):
    assert await _ids(client, admin, since="2026-12-04T09:05:00Z") == ["c@pbx", "b@pbx"]
    assert await _ids(client, admin, until="2026-12-04T09:10:00+00:00") == ["b@pbx", "a@pbx"]
    assert await _ids(client, admin, since="2026-12-04T10:05:00+01:00", until="2026-12-04T09:15:00Z") == ["b@pbx"]
    assert await _ids(client, admin, call_id="a@pbx") == ["a@pbx"]
    assert await _ids(client, admin, call_id="a@pbx", party="anonymous") == []


@pytest.mark.parametrize(("params", "message"), [
    ({"since": "2026-12-04T09:05:00"}, "since: 2026-12-04T09:05:00 has no time zone"),
    ({"since": "2026-12-04T10:00:00Z", "until": "2026-12-04T09:00:00Z"}, "since: must not be after until"),
])
async def test_r7_bad_time_range_is_422_saying_what_to_fix(client, admin, calls, params, message):
    response = await client.get("/calls", headers=admin.headers, params=params)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(message)


async def test_r7_call_log_is_for_admins_and_number_managers_only(client, admin, manager, plain, calls):
    call_id = (await client.get("/calls", headers=admin.headers)).json()["items"][0]["id"]
    assert (await client.get("/calls", headers=manager.headers)).status_code == 200
    assert (await client.get(f"/calls/{call_id}", headers=manager.headers)).status_code == 200
    for path in ("/calls", f"/calls/{call_id}"):
        refused = await client.get(path, headers=plain.headers)
        assert refused.status_code == 403 and "manage numbers" in refused.json()["detail"]
        assert (await client.get(path)).status_code == 401


async def test_r7_unknown_call_is_404(client, admin):
    response = await client.get("/calls/99", headers=admin.headers)
    assert response.status_code == 404 and response.json()["detail"] == "call 99 not found"


async def test_r7_call_shows_its_times_outcome_and_who_answered(client, admin, sessionmaker, calls):
    async with sessionmaker() as session:
        await call_log.record_offer(session, "call:a@pbx", admin.employee_id)
        await call_log.record_answer(session, "call:a@pbx", answered_at=T0 + timedelta(seconds=4),
                                     employee_id=admin.employee_id)
        await call_log.record_end(session, "call:a@pbx", ended_at=T0 + timedelta(seconds=64), outcome="answered",
                                  status=200)
        await session.commit()
    body = (await client.get("/calls", headers=admin.headers, params={"call_id": "a@pbx"})).json()["items"][0]
    assert (body["outcome"], body["status"], body["answered_by_id"], body["offered_ids"], body["duration_s"]) == (
        "answered", 200, admin.employee_id, [admin.employee_id], 60.0)
    assert body["number_id"] == calls["paris"] and body["number"] == "+33184880000"


async def test_r7_call_lists_items_created_and_attached_with_its_reasons(client, admin, sessionmaker, calls):
    key = "call:a@pbx"
    async with sessionmaker() as session:
        lead, contact = Lead(title="Call from +33612345678"), Contact(name="Bob")
        session.add_all([lead, contact])
        await session.flush()
        session.add(IdempotencyKey(key=f"{key}:create_lead", result=ItemRef("lead", lead.id).to_dict()))
        session.add(Activity(kind="call", direction="inbound", interaction_key=key, bindings=[
            ActivityBinding(item_type="lead", item_id=lead.id), ActivityBinding(item_type="contact", item_id=contact.id)]))
        # Another call's activity on the same contact is not this call's.
        session.add(Activity(kind="call", direction="inbound", interaction_key="call:b@pbx",
                             bindings=[ActivityBinding(item_type="company", item_id=7)]))
        plan = LinkPlan(interaction_key=key, action="create_lead", create=("lead",), responsible_id=admin.employee_id,
                        record_activity=True, rule_ids=("T4a", "T10"))
        session.add(Decision(interaction_key=key, channel="call", plan=plan.to_dict()))
        await call_log.record_crm(session, key, {"action": "create_lead", "rule_ids": ["T4a", "T10"], "notes": [],
                                                 "responsible_id": admin.employee_id})
        await session.commit()
    call_id = (await client.get("/calls", headers=admin.headers, params={"call_id": "a@pbx"})).json()["items"][0]["id"]
    body = (await client.get(f"/calls/{call_id}", headers=admin.headers)).json()
    assert body["items"] == [{"type": "lead", "id": lead.id, "how": "created"},
                             {"type": "contact", "id": contact.id, "how": "attached"}]
    explanation = body["explanation"]
    assert explanation[0].startswith("R2.in_order: the number's queue group rang its members")
    assert explanation[1].startswith("T4a: caller not in the CRM and the number creates leads automatically")
    assert explanation[2].startswith("T10:")
    assert body["crm"]["rule_ids"] == ["T4a", "T10"]


async def test_r7_call_without_a_stored_plan_explains_the_logged_rule_ids(client, admin, sessionmaker, calls):
    async with sessionmaker() as session:
        await call_log.record_crm(session, "call:b@pbx", {"action": "none", "rule_ids": ["R6"],
                                                         "notes": ["caller withheld"]})
        await session.commit()
    call_id = (await client.get("/calls", headers=admin.headers, params={"call_id": "b@pbx"})).json()["items"][0]["id"]
    body = (await client.get(f"/calls/{call_id}", headers=admin.headers)).json()
    assert body["items"] == []
    assert body["explanation"][-2:] == ["R6: decided (no stored plan)", "note: caller withheld"]
