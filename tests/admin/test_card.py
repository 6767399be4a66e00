"""The call card's endpoints (SPEC R8, T4b) in process: who may act on a card and the clear refusals.
The stream itself, with real calls, is proven in tests/integration/test_live_card.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gateway.calls.card_events import CardHub
from gateway.crm_bridge import call_hooks
from gateway.storage import call_log
from gateway.storage.models import Number, OutboxEntry, QueueGroup, QueueMember

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CALL = "t4b-card@pbx"


@pytest.fixture
async def t4b_call(sessionmaker, plain) -> str:
    """A call to a number set to offer_in_card, from a new caller, that rang Paula."""
    async with sessionmaker() as session:
        group = QueueGroup(name="Sales", members=[QueueMember(employee_id=plain.employee_id, position=1)])
        session.add(group)
        await session.flush()
        session.add(Number(kind="rented", number="01 84 88 00 00", name="Paris", default_region="FR",
                           queue_group_id=group.id, unknown_caller_action="offer_in_card"))
        await session.flush()
        key = call_hooks.call_key(CALL)
        await call_log.record_start(session, key=key, call_id=CALL, direction="inbound", number_id=None,
                                    number="+33184880000", party_raw="0655000101", party_e164="+33655000101",
                                    started_at=T0, routing={})
        await call_log.record_offer(session, key, plain.employee_id)
        plan = await call_hooks.plan_call(session, call_id=CALL, number="+33184880000", party_raw="+33655000101",
                                          direction="inbound", now=T0)
        assert plan.action == "offer_in_card"
        await session.commit()
    return CALL


async def test_t4b_a_note_before_anything_was_created_from_the_card_is_409_saying_so(client, plain, t4b_call):
    answer = await client.post("/card/note", json={"call_id": t4b_call, "text": "call back"}, headers=plain.headers)
    assert answer.status_code == 409 and "create a lead or a contact from the card first" in answer.json()["detail"]


async def test_t4b_the_card_creates_one_item_per_call(client, plain, t4b_call, sessionmaker):
    first = await client.post("/card/create", json={"call_id": t4b_call, "type": "contact"}, headers=plain.headers)
    assert first.status_code == 202, first.text
    assert first.json()["type"] == "contact" and first.json()["responsible_id"] == plain.employee_id
    for item_type in ("contact", "lead"):
        again = await client.post("/card/create", json={"call_id": t4b_call, "type": item_type}, headers=plain.headers)
        assert again.status_code == 409 and "one item per call" in again.json()["detail"]
    noted = await client.post("/card/note", json={"call_id": t4b_call, "text": "call back"}, headers=plain.headers)
    assert noted.status_code == 202, noted.text
    async with sessionmaker() as session:
        queued = await session.scalars(select(OutboxEntry.kind).where(
            OutboxEntry.interaction_key == call_hooks.call_key(t4b_call)).order_by(OutboxEntry.seq))
        # The note waits behind the creation of the item and its activity (C4: in order per call).
        assert list(queued) == ["link_plan", "call_note"]


async def test_r8_only_an_employee_the_call_rang_acts_on_its_card(client, manager, t4b_call):
    for path, body in (("/card/create", {"call_id": t4b_call, "type": "lead"}),
                       ("/card/note", {"call_id": t4b_call, "text": "x"})):
        answer = await client.post(path, json=body, headers=manager.headers)
        assert answer.status_code == 403 and "not offered to you" in answer.json()["detail"]


async def test_r8_an_unknown_call_is_404_naming_where_its_id_comes_from(client, plain):
    answer = await client.post("/card/create", json={"call_id": "nope@pbx", "type": "lead"}, headers=plain.headers)
    assert answer.status_code == 404 and "call_id of a card event" in answer.json()["detail"]


async def test_r8_the_card_creates_only_leads_and_contacts(client, plain, t4b_call):
    answer = await client.post("/card/create", json={"call_id": t4b_call, "type": "deal"}, headers=plain.headers)
    assert answer.status_code == 422


async def test_r8_the_stream_needs_a_token_live_calls_and_a_numeric_last_event_id(client, app, plain):
    assert (await client.get("/card/stream")).status_code == 401
    assert (await client.get("/card/stream", headers=plain.headers)).status_code == 503
    app.state.card_hub = CardHub(lambda routed: None)  # type: ignore[arg-type,return-value]
    answer = await client.get("/card/stream", headers={**plain.headers, "Last-Event-ID": "yesterday"})
    assert answer.status_code == 400 and "Last-Event-ID" in answer.json()["detail"]
