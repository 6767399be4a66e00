"""SPEC rules through the whole CRM service: plan_call → Decision + outbox → worker → built-in store.

Every test runs on a real migrated database; the ones marked with the ``db`` fixture run on SQLite AND on
a real PostgreSQL server. Nothing is mocked: the linking engine, the outbox worker and the store are the
production code.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gateway.crm_bridge.call_hooks import CardNotOffered, create_from_card, transfer_call
from gateway.crm_bridge.linking import Action, ItemRef
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.rights import SYSTEM, AccessDenied, Actor
from gateway.crm_bridge.store import BuiltinCrm, activities_of, timeline_of
from gateway.storage.models import Activity, Company, Contact, Deal, ExceptionEntry, ItemPhone, Lead
from tests.crm_bridge.conftest import Db, World, place_call, update_crm, update_number

NEW_CALLER = "01 44 55 66 77"  # a Paris number in national form; E.164 +33144556677


async def leads(db: Db) -> list[Lead]:
    async with db.sessions() as session:
        return list((await session.scalars(sa.select(Lead).order_by(Lead.id))).all())


async def item_counts(db: Db) -> dict[str, int]:
    tables = ("leads", "contacts", "companies", "deals", "activities", "activity_bindings")
    return {t: await db.count(t) for t in tables}


async def test_t4a_t6_t10_new_caller_becomes_exactly_one_lead_with_source_and_first_queue_member(
    db: Db, world: World
) -> None:
    plan = await place_call(db, world, call_id="t4a-1@pbx", party=NEW_CALLER)

    assert plan.action == Action.CREATE_LEAD
    [lead] = await leads(db)
    assert lead.status == "active"
    assert lead.source_id == world.source  # T6: the number's source
    assert lead.responsible_id == world.anna  # T10: first member by queue position (anna has position 1)
    assert lead.interaction_key == "call:t4a-1@pbx"
    async with db.sessions() as session:
        phones = (
            await session.scalars(sa.select(ItemPhone.normalized).where(ItemPhone.item_id == lead.id))
        ).all()
        assert list(phones) == ["+33144556677"]
        [activity] = await activities_of(session, ItemRef("lead", lead.id))
        assert (activity.kind, activity.direction, activity.responsible_id) == ("call", "inbound", world.anna)
        assert [e.kind for e in await timeline_of(session, ItemRef("lead", lead.id))] == ["call"]


async def test_t4b_offer_in_card_creates_nothing(db: Db, world: World) -> None:
    await update_number(db, unknown_caller_action="offer_in_card")
    before = await item_counts(db)

    plan = await place_call(db, world, call_id="t4b@pbx", party=NEW_CALLER)

    assert plan.action == Action.OFFER_IN_CARD
    assert plan.responsible_id == world.anna  # what a card-created lead would get
    assert await item_counts(db) == before
    assert await db.count("outbox_entries") == 0


async def test_t5_number_creating_for_incoming_only_creates_nothing_for_outgoing(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await update_number(db, create_for="incoming")

    outgoing = await place_call(
        db, world, call_id="t5-out@pbx", party=NEW_CALLER, direction="outbound", agent_id=world.boris
    )
    assert outgoing.action == Action.RECORD_ONLY
    assert await db.count("leads") == 0

    incoming = await place_call(db, world, call_id="t5-in@pbx", party=NEW_CALLER)
    assert incoming.action == Action.CREATE_LEAD
    assert await db.count("leads") == 1


async def test_t5_outgoing_call_creates_lead_for_the_employee_who_placed_it(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await update_number(db, create_for="outgoing")

    await place_call(
        db, world, call_id="t5-agent@pbx", party=NEW_CALLER, direction="outbound", agent_id=world.boris
    )

    [lead] = await leads(db)
    assert lead.responsible_id == world.boris
    async with db.sessions() as session:
        [activity] = await activities_of(session, ItemRef("lead", lead.id))
        assert activity.direction == "outbound"


async def test_t7_known_caller_is_attached_not_duplicated_c3_any_written_form(db: Db, world: World) -> None:
    await place_call(db, world, call_id="first@pbx", party=NEW_CALLER)
    [lead] = await leads(db)

    # C3: the international form (and a SIP URI) of the same line is the same client.
    second = await place_call(db, world, call_id="second@pbx", party="sip:+33144556677@carrier.example")
    third = await place_call(db, world, call_id="third@pbx", party="+33 1 44 55 66 77")

    assert second.action == third.action == Action.ATTACH
    assert second.attach_to == (ItemRef("lead", lead.id),)
    assert second.responsible_id == world.anna
    assert [x.id for x in await leads(db)] == [lead.id]  # no duplicate
    async with db.sessions() as session:
        activities = await activities_of(session, ItemRef("lead", lead.id))
    assert [a.interaction_key for a in activities] == ["call:first@pbx", "call:second@pbx", "call:third@pbx"]


async def test_t7_known_contact_gets_the_activity_with_its_responsible(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await place_call(db, world, call_id="lead@pbx", party=NEW_CALLER)
    [lead] = await leads(db)
    async with db.sessions() as session, session.begin():
        conversion = await BuiltinCrm().convert_lead(session, lead.id, to=("contact",), actor=SYSTEM)
        await BuiltinCrm().set_responsible(session, conversion.contact, world.boris)

    plan = await place_call(db, world, call_id="again@pbx", party=NEW_CALLER)

    assert plan.action == Action.ATTACH
    assert plan.attach_to == (conversion.contact,)  # the converted lead is finished; the contact is open
    assert plan.responsible_id == world.boris
    async with db.sessions() as session:
        [_, again] = await activities_of(session, conversion.contact)
    assert again.interaction_key == "call:again@pbx" and again.responsible_id == world.boris


async def test_t8_exception_number_creates_nothing_and_adds_no_activity(db: Db, world: World) -> None:
    before = await item_counts(db)

    plan = await place_call(db, world, call_id="t8@pbx", party=world.exception_phone)

    assert plan.action == Action.RECORD_ONLY and plan.rule_ids == ("T8",)
    assert await item_counts(db) == before


async def test_t8_a_known_client_put_on_the_exception_list_gets_no_new_activity(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await place_call(db, world, call_id="t8-before@pbx", party=NEW_CALLER)
    async with db.sessions() as session, session.begin():
        session.add(ExceptionEntry(kind="phone", value=NEW_CALLER, normalized="+33144556677"))

    plan = await place_call(db, world, call_id="t8-after@pbx", party=NEW_CALLER)

    assert plan.action == Action.RECORD_ONLY
    assert await db.count("leads") == 1
    assert await db.count("activities") == 1  # only the call from before the listing


async def test_t9_employee_number_creates_nothing_and_adds_no_activity(db: Db, world: World) -> None:
    before = await item_counts(db)

    plan = await place_call(db, world, call_id="t9@pbx", party=world.employee_phone)

    assert plan.action == Action.NOTHING and plan.rule_ids == ("T9",)
    assert await item_counts(db) == before


async def test_t12_simple_mode_makes_a_deal_in_the_chosen_pipeline_with_a_contact(
    db: Db, world: World
) -> None:
    await update_crm(db, mode="simple", deal_pipeline_id=world.sales_pipeline, deal_creation_mode="contact")

    plan = await place_call(db, world, call_id="t12@pbx", party=NEW_CALLER)

    assert plan.action == Action.CREATE_DEAL
    assert await db.count("leads") == 0
    async with db.sessions() as session:
        [deal] = (await session.scalars(sa.select(Deal))).all()
        [contact] = (await session.scalars(sa.select(Contact))).all()
        assert deal.pipeline_id == world.sales_pipeline
        assert deal.contact_id == contact.id and deal.company_id is None
        assert (deal.source_id, deal.responsible_id) == (world.source, world.anna)
        assert [p.normalized for p in await contact.awaitable_attrs.phones] == ["+33144556677"]
        [activity] = await activities_of(session, ItemRef("deal", deal.id))
        assert {(b.item_type, b.item_id) for b in activity.bindings} == {
            ("deal", deal.id),
            ("contact", contact.id),
        }


async def test_t12_simple_mode_default_pipeline_with_a_company(sqlite_db: Db, sqlite_world: World) -> None:
    db, world = sqlite_db, sqlite_world
    await update_crm(db, mode="simple", deal_pipeline_id=None, deal_creation_mode="company")

    await place_call(db, world, call_id="t12c@pbx", party=NEW_CALLER)

    async with db.sessions() as session:
        [deal] = (await session.scalars(sa.select(Deal))).all()
        [company] = (await session.scalars(sa.select(Company))).all()
        assert deal.pipeline_id == world.general_pipeline
        assert deal.company_id == company.id and deal.contact_id is None
    assert await db.count("contacts") == 0


async def test_t13_conversion_keeps_activities_on_the_lead_and_adds_them_to_new_items(
    db: Db, world: World
) -> None:
    await place_call(db, world, call_id="c1@pbx", party=NEW_CALLER)
    await place_call(db, world, call_id="c2@pbx", party=NEW_CALLER)
    [lead] = await leads(db)

    async with db.sessions() as session, session.begin():
        conversion = await BuiltinCrm().convert_lead(
            session, lead.id, to=("contact", "company", "deal"), actor=SYSTEM
        )

    lead_ref = ItemRef("lead", lead.id)
    async with db.sessions() as session:
        converted = await session.get(Lead, lead.id)
        assert (
            converted is not None and converted.status == "converted" and converted.converted_at is not None
        )
        on_lead = [a.id for a in await activities_of(session, lead_ref)]
        assert len(on_lead) == 2
        for ref in conversion.created:
            assert [a.id for a in await activities_of(session, ref)] == on_lead, ref
        deal = await session.get(Deal, conversion.deal.id)
        assert deal is not None
        assert (deal.contact_id, deal.company_id, deal.lead_id) == (
            conversion.contact.id,
            conversion.company.id,
            lead.id,
        )
        contact = await session.get(Contact, conversion.contact.id)
        assert contact is not None and contact.company_id == conversion.company.id
        assert [p.normalized for p in await contact.awaitable_attrs.phones] == ["+33144556677"]
        assert [e.kind for e in await timeline_of(session, lead_ref)][-1] == "converted"


async def test_m11_repeat_sales_creates_a_repeat_lead_for_a_client_with_no_open_request(
    db: Db, world: World
) -> None:
    await place_call(db, world, call_id="m11-first@pbx", party=NEW_CALLER)
    [lead] = await leads(db)
    async with db.sessions() as session, session.begin():
        conversion = await BuiltinCrm().convert_lead(session, lead.id, to=("contact",), actor=SYSTEM)
    await update_crm(db, repeat_sales=True)
    # M11: even when the number creates nothing for new callers of this direction.
    await update_number(db, create_for="outgoing")

    plan = await place_call(db, world, call_id="m11-repeat@pbx", party=NEW_CALLER)

    assert plan.action == Action.CREATE_LEAD and "M11" in plan.rule_ids
    all_leads = await leads(db)
    assert len(all_leads) == 2
    repeat = all_leads[1]
    assert (repeat.status, repeat.contact_id, repeat.responsible_id) == (
        "active",
        conversion.contact.id,
        world.anna,
    )
    async with db.sessions() as session:
        [activity] = await activities_of(session, ItemRef("lead", repeat.id))
        assert {(b.item_type, b.item_id) for b in activity.bindings} == {
            ("lead", repeat.id),
            ("contact", conversion.contact.id),
        }

    # The repeat lead is an open request now: the next call attaches instead of creating a third lead.
    again = await place_call(db, world, call_id="m11-again@pbx", party=NEW_CALLER)
    assert again.action == Action.ATTACH
    assert len(await leads(db)) == 2


async def test_m11_legacy_mode_attaches_to_the_active_deal_then_to_the_closed_lead(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await update_crm(db, legacy_lead_mode=True)
    await place_call(db, world, call_id="legacy-1@pbx", party=NEW_CALLER)
    [lead] = await leads(db)
    async with db.sessions() as session, session.begin():
        conversion = await BuiltinCrm().convert_lead(session, lead.id, to=("contact", "deal"), actor=SYSTEM)

    to_deal = await place_call(db, world, call_id="legacy-2@pbx", party=NEW_CALLER)
    assert to_deal.action == Action.ATTACH and to_deal.attach_to == (conversion.deal,)

    async with db.sessions() as session, session.begin():
        await BuiltinCrm().close_item(session, conversion.deal)
    # Without an active deal or lead, legacy mode falls back to the client's closed (here: converted) lead.
    to_lead = await place_call(db, world, call_id="legacy-3@pbx", party=NEW_CALLER)
    assert to_lead.action == Action.ATTACH and to_lead.attach_to == (ItemRef("lead", lead.id),)
    async with db.sessions() as session:
        keys = [a.interaction_key for a in await activities_of(session, ItemRef("lead", lead.id))]
    assert keys[-1] == "call:legacy-3@pbx"
    assert await db.count("leads") == 1 and await db.count("deals") == 1


async def test_t11_transfer_moves_the_new_leads_responsible_but_not_a_known_clients(
    db: Db, world: World
) -> None:
    await update_number(db, change_responsible_on_transfer=True)
    await place_call(db, world, call_id="t11-new@pbx", party=NEW_CALLER, run_worker=False)
    async with db.sessions() as session, session.begin():
        verdict = await transfer_call(session, call_id="t11-new@pbx", transferred_to=world.boris)
    assert verdict.changed
    # Lead creation and the transfer are both queued; order per Call-ID makes the change land on the lead.
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()
    [lead] = await leads(db)
    assert lead.responsible_id == world.boris
    async with db.sessions() as session:
        assert [e.kind for e in await timeline_of(session, ItemRef("lead", lead.id))] == [
            "call",
            "responsible_changed",
        ]

    await place_call(db, world, call_id="t11-known@pbx", party=NEW_CALLER)
    async with db.sessions() as session, session.begin():
        known = await transfer_call(session, call_id="t11-known@pbx", transferred_to=world.chloe)
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()
    assert not known.changed
    assert (await leads(db))[0].responsible_id == world.boris


async def test_c2_the_same_call_id_twice_creates_one_lead_and_one_activity(db: Db, world: World) -> None:
    first = await place_call(db, world, call_id="retransmitted@pbx", party=NEW_CALLER)
    again = await place_call(db, world, call_id="retransmitted@pbx", party=NEW_CALLER)

    assert again == first
    assert await db.count("leads") == 1
    assert await db.count("activities") == 1
    assert await db.count("decisions") == 1
    async with db.sessions() as session:
        assert (await session.scalar(sa.select(sa.func.count()).select_from(Activity))) == 1


async def card(db: Db, world: World, call_id: str, item_type: str, actor: Any = SYSTEM) -> Any:
    async with db.sessions() as session, session.begin():
        return await create_from_card(
            session,
            call_id=call_id,
            number=world.number,
            party_raw=NEW_CALLER,
            direction="inbound",
            item_type=item_type,
            actor=actor,
        )


async def test_t4b_the_employee_creates_the_lead_from_the_call_card_once(db: Db, world: World) -> None:
    await update_number(db, unknown_caller_action="offer_in_card")
    await place_call(db, world, call_id="card@pbx", party=NEW_CALLER)
    assert await db.count("leads") == 0

    queued = await card(db, world, "card@pbx", "lead")
    await card(db, world, "card@pbx", "lead")  # a double click
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()

    assert "T4b" in queued.rule_ids
    [lead] = await leads(db)
    assert (lead.source_id, lead.responsible_id, lead.interaction_key) == (
        world.source,
        world.anna,
        "call:card@pbx",
    )
    async with db.sessions() as session:
        [activity] = await activities_of(session, ItemRef("lead", lead.id))
    assert activity.interaction_key == "call:card@pbx"


async def test_t4b_a_contact_from_the_card_and_t11_for_a_card_lead(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await update_number(db, unknown_caller_action="offer_in_card", change_responsible_on_transfer=True)
    await place_call(db, world, call_id="card-contact@pbx", party=NEW_CALLER)
    await card(db, world, "card-contact@pbx", "contact")
    await place_call(db, world, call_id="card-lead@pbx", party="+33 1 55 55 55 55")
    await card(db, world, "card-lead@pbx", "lead")
    async with db.sessions() as session, session.begin():
        verdict = await transfer_call(session, call_id="card-lead@pbx", transferred_to=world.boris)
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()

    assert verdict.changed  # T11 holds for a lead created from the call card too
    async with db.sessions() as session:
        [contact] = (await session.scalars(sa.select(Contact))).all()
        [lead] = (await session.scalars(sa.select(Lead))).all()
    assert contact.responsible_id == world.anna and contact.source_id == world.source
    assert lead.responsible_id == world.boris


async def test_t4b_the_card_offers_nothing_when_the_number_creates_leads_itself(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    await place_call(db, world, call_id="auto@pbx", party=NEW_CALLER)
    with pytest.raises(CardNotOffered, match="offer_in_card"):
        await card(db, world, "auto@pbx", "lead")
    with pytest.raises(ValueError, match="a lead or a contact"):
        await card(db, world, "auto@pbx", "deal")
    no_rights = Actor(employee_id=world.boris)
    await update_number(db, unknown_caller_action="offer_in_card")
    await place_call(db, world, call_id="offer@pbx", party="+33 1 55 55 55 55")
    with pytest.raises(AccessDenied):
        await card(db, world, "offer@pbx", "lead", actor=no_rights)
    assert await db.count("leads") == 1


async def test_t4b_a_card_lead_made_after_the_call_ended_gets_the_calls_outcome(
    sqlite_db: Db, sqlite_world: World
) -> None:
    """The usual order: the employee hangs up, then creates the lead from the card. The call's activity is
    written only then, so the end of the call must still complete it (answered, duration), not leave it
    open as if the call had been missed."""
    from datetime import UTC, datetime, timedelta

    from gateway.crm_bridge.call_hooks import finish_call

    db, world = sqlite_db, sqlite_world
    await update_number(db, unknown_caller_action="offer_in_card")
    await place_call(db, world, call_id="card-late@pbx", party=NEW_CALLER)
    ended = datetime.now(UTC) - timedelta(minutes=1)
    async with db.sessions() as session, session.begin():
        assert await finish_call(
            session, call_id="card-late@pbx", answered_by=world.anna, duration_s=61.0, ended_at=ended
        )
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()
    await card(db, world, "card-late@pbx", "lead")
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()

    [lead] = await leads(db)
    async with db.sessions() as session:
        [activity] = await activities_of(session, ItemRef("lead", lead.id))
    assert activity.completed_at == ended
    assert activity.details["outcome"] == "answered" and activity.details["duration_s"] == 61.0


async def test_t4b_the_card_creates_a_lead_or_a_contact_never_both(sqlite_db: Db, sqlite_world: World) -> None:
    """T4b: one item per call card; a second click on the other button must not make the caller a
    second CRM record (C2: one interaction, one item)."""
    db, world = sqlite_db, sqlite_world
    await update_number(db, unknown_caller_action="offer_in_card")
    await place_call(db, world, call_id="card-both@pbx", party=NEW_CALLER)
    await card(db, world, "card-both@pbx", "lead")
    with pytest.raises(CardNotOffered, match="lead"):
        await card(db, world, "card-both@pbx", "contact")
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once()
    with pytest.raises(CardNotOffered, match="lead"):
        await card(db, world, "card-both@pbx", "contact")

    assert (await db.count("leads"), await db.count("contacts")) == (1, 0)
