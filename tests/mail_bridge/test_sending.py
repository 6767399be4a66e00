"""Sending a mail from a CRM item through the real admin API, a real SMTP listener (aiosmtpd) as the relay
and a migrated database: one test per rule O1-O6 (and M12 for the reply), asserting the CRM rows and what
the listener received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from gateway.admin.api import build_app
from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Contact, Deal, Lead, OutgoingMail
from tests.crm_bridge.conftest import Db, World, update_crm
from tests.mail_bridge.conftest import seed_mailbox
from tests.mail_bridge.helpers import bindings_of, deliver, grant, headers_of, message, run_outbox
from tests.mail_bridge.smtp_sink import SmtpSink

ALL = ("all", "all")


@dataclass
class Shop:
    """A company with a contact of its own, a lead linked to both, an unlinked deal; anna may do all."""

    db: Db
    world: World
    api: httpx.AsyncClient
    sink: SmtpSink
    mailbox_id: int
    company: ItemRef
    contact: ItemRef
    lead: ItemRef
    bare_deal: ItemRef
    anna: dict[str, str]

    def send(self, ref: ItemRef, to: list[str], **extra: object) -> object:
        body = {"mailbox_id": self.mailbox_id, "to": to, "subject": "Your quote", "body": "Hello", **extra}
        return self.api.post(f"/items/{ref.type}/{ref.id}/mail", json=body, headers=self.anna)


async def _items(db: Db, world: World) -> tuple[ItemRef, ItemRef, ItemRef, ItemRef]:
    crm = BuiltinCrm()
    async with db.sessions() as session, session.begin():
        company = await crm.create_company(
            session, name="Acme", new=NewItem(responsible_id=world.anna, emails=("info@acme.example",)))
        contact = await crm.create_contact(
            session, name="Kate", company_id=company.id,
            new=NewItem(responsible_id=world.anna, emails=("kate@acme.example", "kate.home@mail.example")))
        lead = await crm.create_lead(
            session, title="Acme wants a quote", contact_id=contact.id, company_id=company.id,
            new=NewItem(responsible_id=world.anna, emails=("buyer@acme.example",)))
        deal = await crm.create_deal(session, title="Unlinked deal", new=NewItem(responsible_id=world.anna))
    return company, contact, lead, deal


@pytest.fixture
async def shop(sqlite_db: Db, sqlite_world: World, smtp_sink: SmtpSink) -> AsyncIterator[Shop]:
    mailbox_id = await seed_mailbox(sqlite_db, sqlite_world, smtp_host="127.0.0.1", smtp_port=smtp_sink.port,
                                    smtp_tls_mode="none")
    await grant(sqlite_db, sqlite_world.anna, lead=ALL, contact=ALL, company=ALL, deal=ALL)
    company, contact, lead, deal = await _items(sqlite_db, sqlite_world)
    transport = httpx.ASGITransport(app=build_app(sqlite_db.sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as api:
        yield Shop(sqlite_db, sqlite_world, api, smtp_sink, mailbox_id, company, contact, lead, deal,
                   await headers_of(sqlite_db, sqlite_world.anna))


async def _count(db: Db, model: type) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def test_o3_lead_candidates_drop_the_company_of_a_contact_that_belongs_to_one(shop: Shop) -> None:
    answer = await shop.api.get(f"/items/lead/{shop.lead.id}/mail/recipients", headers=shop.anna)
    assert answer.status_code == 200, answer.text
    offered = {(c["type"], c["id"]): c["addresses"] for c in answer.json()["candidates"]}
    assert offered == {("lead", shop.lead.id): ["buyer@acme.example"],
                       ("contact", shop.contact.id): ["kate@acme.example", "kate.home@mail.example"]}
    company = await shop.api.get(f"/items/company/{shop.company.id}/mail/recipients", headers=shop.anna)
    assert {(c["type"], c["id"]) for c in company.json()["candidates"]} == {
        ("company", shop.company.id), ("contact", shop.contact.id)}
    contact = await shop.api.get(f"/items/contact/{shop.contact.id}/mail/recipients", headers=shop.anna)
    assert [c["type"] for c in contact.json()["candidates"]] == ["contact", "company"]


async def test_o3_deal_without_a_client_is_a_clear_error_and_nothing_is_sent(shop: Shop) -> None:
    listed = await shop.api.get(f"/items/deal/{shop.bare_deal.id}/mail/recipients", headers=shop.anna)
    assert listed.json() == {"candidates": [], "problem": listed.json()["problem"]}
    assert "no linked contact or company" in listed.json()["problem"]
    sent = await shop.send(shop.bare_deal, ["kate@acme.example"])
    assert sent.status_code == 422 and "no linked contact or company" in sent.json()["detail"]
    assert shop.sink.received == [] and await _count(shop.db, OutgoingMail) == 0
    async with shop.db.sessions() as session, session.begin():
        deal = await session.get(Deal, shop.bare_deal.id)
        assert deal is not None
        deal.contact_id = shop.contact.id  # a contact of a company, the company not linked itself
    linked = await shop.api.get(f"/items/deal/{shop.bare_deal.id}/mail/recipients", headers=shop.anna)
    assert [(c["type"], c["id"]) for c in linked.json()["candidates"]] == [("contact", shop.contact.id)]


async def test_o4_a_client_the_sender_may_not_view_is_hidden_and_cannot_be_written_to(shop: Shop) -> None:
    await grant(shop.db, shop.world.anna, lead=ALL, contact=("own", "own"), company=("own", "own"))
    async with shop.db.sessions() as session, session.begin():
        contact = await session.get(Contact, shop.contact.id)
        assert contact is not None
        contact.responsible_id = shop.world.chloe
    listed = await shop.api.get(f"/items/lead/{shop.lead.id}/mail/recipients", headers=shop.anna)
    hidden = [c for c in listed.json()["candidates"] if c["type"] == "contact"]
    assert hidden == [{"type": "contact", "id": shop.contact.id, "name": "Hidden contact", "hidden": True,
                       "addresses": []}]
    refused = await shop.send(shop.lead, ["buyer@acme.example", "Kate <kate@acme.example>"])
    assert refused.status_code == 403 and "O4" in refused.json()["detail"]
    await grant(shop.db, shop.world.anna, lead=("all", "none"))
    no_edit = await shop.send(shop.lead, ["buyer@acme.example"])
    assert no_edit.status_code == 403 and "edit" in no_edit.json()["detail"]
    assert shop.sink.received == [] and await _count(shop.db, OutgoingMail) == 0


async def test_o2_any_address_off_only_the_items_addresses_and_the_mail_becomes_its_activity(shop: Shop) -> None:
    stranger = await shop.send(shop.lead, ["someone@else.example"])
    assert stranger.status_code == 422 and "O2" in stranger.json()["detail"]
    assert shop.sink.received == [] and await _count(shop.db, Lead) == 1
    sent = await shop.send(shop.lead, ["buyer@acme.example"], cc=["KATE@acme.example"])
    assert sent.status_code == 201, sent.text
    [mail] = shop.sink.received
    assert mail.rcpt_tos == ["buyer@acme.example", "kate@acme.example"]
    assert mail.message["Message-ID"] == sent.json()["message_key"] and "@ourco.example>" in mail.message["Message-ID"]
    assert mail.message["From"].endswith("<sales@ourco.example>")
    async with shop.db.sessions() as session:
        outgoing = await session.get(OutgoingMail, sent.json()["outgoing_id"])
        assert outgoing is not None and (outgoing.status, outgoing.item_id) == ("sent", shop.lead.id)
        assert outgoing.smtp_reply is not None and "queued as test" in outgoing.smtp_reply
    await run_outbox(shop.db)
    assert await bindings_of(shop.db, f"email:{sent.json()['message_key']}") == {shop.lead}


async def test_o1_any_address_on_creates_a_lead_or_a_contact_for_a_new_address(shop: Shop) -> None:
    await update_crm(shop.db, allow_email_to_any_address=True, any_address_creates="lead")
    first = await shop.send(shop.lead, ["Nina New <nina@new.example>"])
    assert first.status_code == 201, first.text
    [created] = first.json()["created"]
    assert created["type"] == "lead" and "O1" in first.json()["rule_ids"]
    async with shop.db.sessions() as session:
        lead = await session.get(Lead, created["id"])
        assert lead is not None and lead.responsible_id == shop.world.anna and "Nina New" in lead.title
        assert [e.normalized for e in await lead.awaitable_attrs.emails] == ["nina@new.example"]
    await update_crm(shop.db, any_address_creates="contact")
    second = await shop.send(shop.lead, ["omar@new.example"])
    assert second.json()["created"][0]["type"] == "contact"
    assert [m.rcpt_tos for m in shop.sink.received] == [["nina@new.example"], ["omar@new.example"]]


async def test_o1_a_mail_the_relay_refuses_is_kept_as_failed_and_changes_nothing(shop: Shop) -> None:
    await update_crm(shop.db, allow_email_to_any_address=True)
    shop.sink.refuse.add("nina@new.example")
    refused = await shop.send(shop.lead, ["nina@new.example"])
    assert refused.status_code == 502 and "550" in refused.json()["detail"]
    async with shop.db.sessions() as session:
        [outgoing] = (await session.scalars(sa.select(OutgoingMail))).all()
        assert outgoing.status == "failed" and outgoing.smtp_reply is not None and "550" in outgoing.smtp_reply
    assert await _count(shop.db, Lead) == 1 and await shop.db.count("decisions") == 0


async def test_o5_a_known_address_written_differently_creates_no_duplicate(shop: Shop) -> None:
    await update_crm(shop.db, allow_email_to_any_address=True, any_address_creates="contact")
    async with shop.db.sessions() as session, session.begin():  # a client not linked to the lead
        await BuiltinCrm().create_contact(session, name="Anne", new=NewItem(responsible_id=shop.world.boris,
                                                                            emails=("anne@client.example",)))
    before = await _count(shop.db, Contact), await _count(shop.db, Lead)
    sent = await shop.send(shop.lead, ["  Anne Client <ANNE@Client.Example> "])
    assert sent.status_code == 201, sent.text
    assert sent.json()["created"] == [] and "O5" in sent.json()["rule_ids"]
    assert (await _count(shop.db, Contact), await _count(shop.db, Lead)) == before
    assert shop.sink.received[0].rcpt_tos == ["anne@client.example"]


async def test_o6_a_contact_created_while_writing_from_a_deal_is_not_linked_to_it(shop: Shop) -> None:
    await update_crm(shop.db, allow_email_to_any_address=True, any_address_creates="contact")
    async with shop.db.sessions() as session, session.begin():
        deal = await session.get(Deal, shop.bare_deal.id)
        assert deal is not None
        deal.contact_id = shop.contact.id
    sent = await shop.send(shop.bare_deal, ["kate@acme.example", "new.buyer@acme.example"])
    assert sent.status_code == 201, sent.text
    [created] = sent.json()["created"]
    assert created["type"] == "contact" and "O6" in sent.json()["rule_ids"]
    async with shop.db.sessions() as session:
        deal = await session.get(Deal, shop.bare_deal.id)
        new_contact = await session.get(Contact, created["id"])
        assert deal is not None and deal.contact_id == shop.contact.id
        assert new_contact is not None and new_contact.company_id is None
    assert shop.sink.received[0].rcpt_tos == ["kate@acme.example", "new.buyer@acme.example"]


async def test_m12_the_clients_reply_threads_onto_the_sent_mail(shop: Shop) -> None:
    sent = await shop.send(shop.lead, ["buyer@acme.example"])
    assert sent.status_code == 201, sent.text
    await run_outbox(shop.db)
    our_id = shop.sink.received[0].message["Message-ID"]
    # From a colleague of the buyer the CRM does not know: without M12 this would be a new lead.
    reply = message(sender="boss@acme.example", message_id="<reply1@acme.example>",
                    extra=f"In-Reply-To: {our_id}\nReferences: {our_id}")
    saved = await deliver(shop.db, shop.mailbox_id, reply)
    assert saved.plan is not None and "M12" in saved.plan.rule_ids
    assert await bindings_of(shop.db, saved.interaction_key) == {shop.lead}
    assert await _count(shop.db, Lead) == 1


async def test_o2_a_mailbox_without_its_own_relay_sends_through_the_mail_config_relay(
    sqlite_db: Db, sqlite_world: World, smtp_sink: SmtpSink
) -> None:
    from gateway.admin.routes.mail import set_mail_config
    from gateway.config import MailConfig

    mailbox_id = await seed_mailbox(sqlite_db, sqlite_world)  # no smtp_host of its own
    await grant(sqlite_db, sqlite_world.anna, lead=ALL, contact=ALL, company=ALL, deal=ALL)
    _, _, lead, _ = await _items(sqlite_db, sqlite_world)
    app = build_app(sqlite_db.sessions)
    body = {"mailbox_id": mailbox_id, "to": ["buyer@acme.example"], "subject": "s", "body": "b"}
    headers = await headers_of(sqlite_db, sqlite_world.anna)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as api:
        no_relay = await api.post(f"/items/lead/{lead.id}/mail", json=body, headers=headers)
        assert no_relay.status_code == 422 and "no SMTP relay" in no_relay.json()["detail"]
        set_mail_config(app, MailConfig(smtp_host="127.0.0.1", smtp_port=smtp_sink.port, smtp_tls="none"))
        sent = await api.post(f"/items/lead/{lead.id}/mail", json=body, headers=headers)
        assert sent.status_code == 201, sent.text
    assert [m.rcpt_tos for m in smtp_sink.received] == [["buyer@acme.example"]]
