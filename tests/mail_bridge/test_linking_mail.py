"""One message through the real path — stored once, the ONE engine, the outbox — on SQLite and PostgreSQL.
Each test names the SPEC rule it proves and asserts the CRM rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.crm_bridge.interactions import SaveRefused
from gateway.crm_bridge.linking import Action, ItemRef
from gateway.storage.models import ExceptionEntry, Mailbox, MailMessage
from mail_bridge.linking import find_message, link_message
from tests.crm_bridge.conftest import Db, update_crm
from tests.mail_bridge.conftest import MailWorld
from tests.mail_bridge.helpers import (
    activity_of,
    bindings_of,
    client_contact,
    deliver,
    leads,
    message,
    timeline,
)

NOW = datetime(2026, 12, 4, 9, 0, 5, tzinfo=UTC)


async def set_mailbox(db: Db, mailbox_id: int, **values: object) -> None:
    async with db.sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id)
        for key, value in values.items():
            setattr(mailbox, key, value)


async def test_m1_new_sender_creates_a_lead_with_the_mailbox_source_and_queue(db: Db, mail_world: MailWorld) -> None:
    saved = await deliver(db, mail_world.mailbox_id, message(), now=NOW)
    assert saved.plan is not None and saved.plan.action == Action.CREATE_LEAD
    [lead] = await leads(db)
    assert lead.source_id == mail_world.crm.source and lead.responsible_id == mail_world.crm.anna
    assert await bindings_of(db, saved.interaction_key) == {ItemRef("lead", lead.id)}


async def test_m1_integration_off_saves_nothing_not_even_a_known_clients_mail(db: Db, mail_world: MailWorld) -> None:
    await set_mailbox(db, mail_world.mailbox_id, crm_integration=False, route_known_to_responsible=True)
    await client_contact(db, "anne@client.example", mail_world.crm.chloe)
    saved = await deliver(db, mail_world.mailbox_id, message())
    assert saved.plan is not None and saved.plan.action == Action.RECORD_ONLY
    assert await leads(db) == [] and await activity_of(db, saved.interaction_key) is None
    assert await db.count("mail_messages") == 1  # kept in the mailbox copy


async def test_m2_spam_folder_set_to_the_inbox_stops_automatic_saving(db: Db, mail_world: MailWorld) -> None:
    await set_mailbox(db, mail_world.mailbox_id, spam_folder="INBOX")
    saved = await deliver(db, mail_world.mailbox_id, message())
    assert saved.plan is not None and saved.plan.rule_ids == ("M2",) and await leads(db) == []
    await set_mailbox(db, mail_world.mailbox_id, spam_folder="Junk")
    await deliver(db, mail_world.mailbox_id, message(message_id="<m2@client.example>"))
    assert len(await leads(db)) == 1


async def test_m3_manual_save_follows_the_automatic_rules(db: Db, mail_world: MailWorld) -> None:
    await set_mailbox(db, mail_world.mailbox_id, crm_integration=False)
    saved = await deliver(db, mail_world.mailbox_id, message())
    async with db.sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mail_world.mailbox_id)
        row = await find_message(session, saved.message_key)
        assert mailbox is not None and row is not None
        plan = await link_message(session, mailbox, row, manual_save=True)
    assert plan.action == Action.CREATE_LEAD and plan.rule_ids[-1] == "M3"
    await deliver(db, mail_world.mailbox_id, message())  # runs the outbox; the same message is not stored again
    [lead] = await leads(db)
    assert lead.source_id == mail_world.crm.source and lead.responsible_id == mail_world.crm.anna


async def test_m4_employee_mail_is_never_saved_and_a_manual_save_fails_clearly(db: Db, mail_world: MailWorld) -> None:
    saved = await deliver(db, mail_world.mailbox_id, message(sender="Anna <ANNA@ourco.example>"))
    assert saved.plan is not None and saved.plan.action == Action.NOTHING and saved.plan.rule_ids == ("M4",)
    async with db.sessions() as session:
        mailbox = await session.get(Mailbox, mail_world.mailbox_id)
        row = await find_message(session, saved.message_key)
        assert mailbox is not None and row is not None
        with pytest.raises(SaveRefused, match="error saving the email to the CRM"):
            await link_message(session, mailbox, row, manual_save=True)
    assert await leads(db) == [] and await activity_of(db, saved.interaction_key) is None


async def test_m5_activity_goes_to_the_items_responsible_and_timeline_names_the_connector(
    db: Db, mail_world: MailWorld
) -> None:
    contact = await client_contact(db, "anne@client.example", mail_world.crm.chloe)
    saved = await deliver(db, mail_world.mailbox_id, message())
    activity = await activity_of(db, saved.interaction_key)
    assert activity is not None and activity.responsible_id == mail_world.crm.chloe
    [entry] = [e for e in await timeline(db, contact) if e.kind == "new_email"]
    assert entry.employee_id == mail_world.crm.boris  # boris connected the mailbox


async def test_m6_received_arrived_and_deadline_are_utc_with_their_zone(db: Db, mail_world: MailWorld) -> None:
    saved = await deliver(db, mail_world.mailbox_id, message(date="Fri, 04 Dec 2026 10:30:00 +0200"), now=NOW)
    async with db.sessions() as session:
        row = await session.get(MailMessage, saved.message_id)
        assert row is not None
        assert row.received_at == datetime(2026, 12, 4, 8, 30, tzinfo=UTC) and row.received_zone == "+02:00"
        assert row.arrived_at == NOW
    activity = await activity_of(db, saved.interaction_key)
    assert activity is not None and activity.deadline == NOW and activity.deadline.tzinfo is not None
    assert activity.details["received_at"] == "2026-12-04T08:30:00+00:00"


async def test_m8_known_client_whose_manager_is_outside_the_queue_gets_a_new_lead(
    db: Db, mail_world: MailWorld
) -> None:
    await set_mailbox(db, mail_world.mailbox_id, route_known_to_responsible=True)
    await client_contact(db, "anne@client.example", mail_world.crm.chloe)
    saved = await deliver(db, mail_world.mailbox_id, message())
    assert saved.plan is not None and saved.plan.rule_ids[0] == "M8"
    [lead] = await leads(db)
    assert lead.responsible_id == mail_world.crm.anna


async def test_m11_repeat_sales_gives_an_existing_client_a_repeat_lead(db: Db, mail_world: MailWorld) -> None:
    await update_crm(db, repeat_sales=True)
    await set_mailbox(db, mail_world.mailbox_id, create_items_for_new=False)
    contact = await client_contact(db, "anne@client.example", mail_world.crm.boris)
    saved = await deliver(db, mail_world.mailbox_id, message())
    [lead] = await leads(db)
    assert lead.responsible_id == mail_world.crm.boris
    assert await bindings_of(db, saved.interaction_key) == {ItemRef("lead", lead.id), contact}


async def test_m12_a_reply_joins_its_threads_items_and_one_message_id_is_saved_once(
    db: Db, mail_world: MailWorld
) -> None:
    first = await deliver(db, mail_world.mailbox_id, message())
    again = await deliver(db, mail_world.mailbox_id, message(), folder="Archive", uid=7)
    assert again.new is False and again.message_id == first.message_id
    reply = await deliver(db, mail_world.mailbox_id, message(
        sender="Other person <other@elsewhere.example>", message_id="<m2@elsewhere.example>",
        extra="In-Reply-To: <m1@client.example>\nReferences: <m1@client.example>",
    ))
    assert reply.plan is not None and reply.plan.rule_ids[0] == "M12"
    [lead] = await leads(db)
    assert await bindings_of(db, reply.interaction_key) == {ItemRef("lead", lead.id)}
    assert await db.count("mail_messages") == 2


async def test_t8_exception_list_sender_is_kept_in_the_mailbox_only(db: Db, mail_world: MailWorld) -> None:
    async with db.sessions() as session, session.begin():
        session.add(ExceptionEntry(kind="email", value="anne@client.example", normalized="anne@client.example"))
    saved = await deliver(db, mail_world.mailbox_id, message())
    assert saved.plan is not None and saved.plan.rule_ids == ("T8",)
    assert await leads(db) == [] and await db.count("mail_messages") == 1


async def test_o5_the_same_address_written_differently_is_the_same_client(db: Db, mail_world: MailWorld) -> None:
    contact = await client_contact(db, "anne@client.example", mail_world.crm.anna)
    saved = await deliver(db, mail_world.mailbox_id, message(sender='"ANNE" <  Anne@CLIENT.example >'))
    assert await leads(db) == [] and contact in await bindings_of(db, saved.interaction_key)


async def test_m13_items_from_mail_go_to_the_queue_members_in_turn(db: Db, mail_world: MailWorld) -> None:
    crm = mail_world.crm  # queue: anna (position 1), boris (position 2)
    senders = ["Ann One <one@a.example>", "two@b.example", "three@c.example"]
    plans = [(await deliver(db, mail_world.mailbox_id, message(sender=s, message_id=f"<t{i}@x>"))).plan
             for i, s in enumerate(senders)]
    assert [p.responsible_id for p in plans if p is not None] == [crm.anna, crm.boris, crm.anna]
    assert all(p is not None and "M13" in p.rule_ids for p in plans)
    assert [lead.responsible_id for lead in await leads(db)] == [crm.anna, crm.boris, crm.anna]
    # A known client's mail creates nothing, so it takes no turn.
    await client_contact(db, "known@client.example", crm.chloe)
    await deliver(db, mail_world.mailbox_id, message(sender="known@client.example", message_id="<k@x>"))
    async with db.sessions() as session:
        mailbox = await session.get(Mailbox, mail_world.mailbox_id)
        assert mailbox is not None and mailbox.last_assigned_id == crm.anna
    fourth = await deliver(db, mail_world.mailbox_id, message(sender="four@d.example", message_id="<t4@x>"))
    assert fourth.plan is not None and fourth.plan.responsible_id == crm.boris
    lead = (await leads(db))[0]
    async with db.sessions() as session:
        first = await session.get(type(lead), lead.id)
        assert first is not None and [e.normalized for e in await first.awaitable_attrs.emails] == ["one@a.example"]
        assert "Ann One" in first.title and first.source_id == crm.source


def test_m13_the_turn_follows_the_employee_not_the_position() -> None:
    from mail_bridge.linking import in_turn

    assert in_turn((5, 6, 7), None) == (5, 6, 7)
    assert in_turn((5, 6, 7), 6) == (7, 5, 6)
    assert in_turn((5, 6, 7), 7) == (5, 6, 7)
    assert in_turn((5, 7), 6) == (5, 7)  # the last one served left the queue: the turn starts over
