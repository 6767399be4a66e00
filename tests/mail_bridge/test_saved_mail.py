"""Working with saved mail through the real admin API on a migrated database (M7, M9, M10); mail arrives
through the real linking path (store, engine, outbox), replies leave through a real SMTP listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.admin.api import build_app
from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Activity
from tests.crm_bridge.conftest import Db, World
from tests.mail_bridge.conftest import seed_mailbox
from tests.mail_bridge.helpers import (
    activity_of,
    bindings_of,
    deliver,
    grant,
    headers_of,
    leads,
    message,
    run_outbox,
)
from tests.mail_bridge.smtp_sink import SmtpSink

ALL = ("all", "all")


@dataclass
class Desk:
    db: Db
    world: World
    api: httpx.AsyncClient
    sink: SmtpSink
    mailbox_id: int


@pytest.fixture
async def desk(sqlite_db: Db, sqlite_world: World, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    mailbox_id = await seed_mailbox(sqlite_db, sqlite_world, smtp_host="127.0.0.1", smtp_port=smtp_sink.port,
                                    smtp_tls_mode="none")
    await grant(sqlite_db, sqlite_world.anna, lead=ALL, contact=ALL, company=ALL, deal=ALL)
    transport = httpx.ASGITransport(app=build_app(sqlite_db.sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as api:
        yield Desk(sqlite_db, sqlite_world, api, smtp_sink, mailbox_id)


async def _client_with_deal(desk: Desk) -> tuple[ItemRef, ItemRef, ItemRef]:
    """Chloé's contact anne@client.example with a deal of anna's, and a second deal of boris's."""
    crm = BuiltinCrm()
    async with desk.db.sessions() as session, session.begin():
        contact = await crm.create_contact(session, name="Anne", new=NewItem(
            responsible_id=desk.world.chloe, emails=("anne@client.example",)))
        deal = await crm.create_deal(session, title="Anne's order", contact_id=contact.id,
                                     new=NewItem(responsible_id=desk.world.anna))
        other = await crm.create_deal(session, title="Another order", new=NewItem(responsible_id=desk.world.boris))
    return contact, deal, other


async def _mail_on(desk: Desk, ref: ItemRef, who: int) -> list[dict[str, object]]:
    answer = await desk.api.get(f"/items/{ref.type}/{ref.id}/mail", headers=await headers_of(desk.db, who))
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def test_m7_a_mail_shows_on_a_deal_only_to_who_may_view_every_item_it_is_bound_to(desk: Desk) -> None:
    contact, deal, _ = await _client_with_deal(desk)
    saved = await deliver(desk.db, desk.mailbox_id, message())
    assert await bindings_of(desk.db, saved.interaction_key) == {contact, deal}
    await grant(desk.db, desk.world.boris, deal=ALL, contact=("own", "own"))  # not Chloé's contact
    assert await _mail_on(desk, deal, desk.world.boris) == []
    hidden = await desk.api.post(f"/mail/{saved.message_id}/complete", headers=await headers_of(desk.db, desk.world.boris))
    assert hidden.status_code == 404
    [shown] = await _mail_on(desk, deal, desk.world.anna)
    assert shown["message_id"] == saved.message_id and shown["direction"] == "inbound"
    await grant(desk.db, desk.world.boris, deal=ALL, contact=("all", "none"))
    assert len(await _mail_on(desk, deal, desk.world.boris)) == 1


async def test_m9_moving_a_mail_to_another_deal_needs_the_edit_right_on_both(desk: Desk) -> None:
    contact, deal, other = await _client_with_deal(desk)
    saved = await deliver(desk.db, desk.mailbox_id, message())
    await grant(desk.db, desk.world.anna, contact=ALL, deal=("all", "own"))  # may not edit boris's deal
    anna = await headers_of(desk.db, desk.world.anna)
    denied = await desk.api.post(f"/mail/{saved.message_id}/move", json={"deal_id": other.id}, headers=anna)
    assert denied.status_code == 403 and "edit" in denied.json()["detail"]
    assert await bindings_of(desk.db, saved.interaction_key) == {contact, deal}
    await grant(desk.db, desk.world.anna, contact=ALL, deal=ALL)
    moved = await desk.api.post(f"/mail/{saved.message_id}/move", json={"deal_id": other.id}, headers=anna)
    assert moved.status_code == 200, moved.text
    assert await bindings_of(desk.db, saved.interaction_key) == {contact, other}
    assert await _mail_on(desk, deal, desk.world.anna) == []
    assert [m["message_id"] for m in await _mail_on(desk, other, desk.world.anna)] == [saved.message_id]


async def test_m9_a_mail_on_a_lead_and_the_deal_converted_from_it_does_not_move(desk: Desk) -> None:
    saved = await deliver(desk.db, desk.mailbox_id, message(sender="new@prospect.example"))
    [lead] = await leads(desk.db)
    async with desk.db.sessions() as session, session.begin():
        converted = await BuiltinCrm().convert_lead(session, lead.id, to=("deal",))
    assert converted.deal is not None
    assert await bindings_of(desk.db, saved.interaction_key) == {ItemRef("lead", lead.id), converted.deal}
    _, _, other = await _client_with_deal(desk)
    refused = await desk.api.post(f"/mail/{saved.message_id}/move", json={"deal_id": other.id},
                                  headers=await headers_of(desk.db, desk.world.anna))
    assert refused.status_code == 409
    assert f"bound to lead {lead.id} and to deal {converted.deal.id}" in refused.json()["detail"]
    assert await bindings_of(desk.db, saved.interaction_key) == {ItemRef("lead", lead.id), converted.deal}


async def test_m10_replying_does_not_complete_the_mail_completing_by_hand_does(desk: Desk) -> None:
    saved = await deliver(desk.db, desk.mailbox_id, message(sender="new@prospect.example"))
    [lead] = await leads(desk.db)
    anna = await headers_of(desk.db, desk.world.anna)
    reply = await desk.api.post(f"/items/lead/{lead.id}/mail", headers=anna, json={
        "mailbox_id": desk.mailbox_id, "to": ["new@prospect.example"], "subject": "Re: Quote please",
        "body": "Here it is", "reply_to_message_id": saved.message_id})
    assert reply.status_code == 201, reply.text
    assert desk.sink.received[0].message["In-Reply-To"] == "<m1@client.example>"
    await run_outbox(desk.db)
    incoming = await activity_of(desk.db, saved.interaction_key)
    assert incoming is not None and incoming.completed_at is None
    done = await desk.api.post(f"/mail/{saved.message_id}/complete", headers=anna)
    assert done.status_code == 200 and done.json()["completed_at"] is not None
    again = await desk.api.post(f"/mail/{saved.message_id}/complete", headers=anna)
    assert again.json()["completed_at"] == done.json()["completed_at"]


async def test_m10_a_new_activity_from_an_incoming_mail_completes_the_old_one(desk: Desk) -> None:
    saved = await deliver(desk.db, desk.mailbox_id, message(sender="new@prospect.example"))
    [lead] = await leads(desk.db)
    anna = await headers_of(desk.db, desk.world.anna)
    follow = await desk.api.post(f"/mail/{saved.message_id}/activities", headers=anna,
                                 json={"subject": "Call back about the quote", "deadline": "2026-12-10T09:00:00Z"})
    assert follow.status_code == 201, follow.text
    async with desk.db.sessions() as session:
        old = await session.get(Activity, follow.json()["completed_activity_id"])
        new = await session.get(Activity, follow.json()["new_activity_id"])
        assert old is not None and old.completed_at is not None
        assert new is not None and new.completed_at is None and new.subject == "Call back about the quote"
        assert {(b.item_type, b.item_id) for b in new.bindings} == {("lead", lead.id)}
        assert new.responsible_id == old.responsible_id == desk.world.anna
    sent = await desk.api.post(f"/items/lead/{lead.id}/mail", headers=anna, json={
        "mailbox_id": desk.mailbox_id, "to": ["new@prospect.example"], "subject": "Hi", "body": "."})
    await run_outbox(desk.db)
    outgoing = await desk.api.post(f"/mail/{sent.json()['message_id']}/activities", headers=anna,
                                   json={"subject": "Nope"})
    assert outgoing.status_code == 422 and "incoming" in outgoing.json()["detail"]
