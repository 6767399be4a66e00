"""The built-in CRM store: finding a party (one indexed query), creating, closing, recording."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from gateway.crm_bridge.backend import CrmBackend, CrmError, ItemNotFound, NewItem
from gateway.crm_bridge.linking import ItemRef, KnownItem
from gateway.crm_bridge.rights import SYSTEM
from gateway.crm_bridge.store import BuiltinCrm, activities_of, timeline_of
from gateway.crm_bridge.store.lookup import InlinePartyLookup, party_query
from gateway.storage.inline_reads import InlineReads, prepare
from gateway.storage.models import Deal, ExceptionEntry, Lead
from tests.crm_bridge.conftest import Db, World

crm = BuiltinCrm()


def test_builtin_crm_implements_the_backend_protocol() -> None:
    assert isinstance(crm, CrmBackend)


async def _people(db: Db, world: World) -> dict[str, ItemRef]:
    """A lead (national form), a contact in a company with a deal, and an unrelated contact."""
    async with db.sessions() as session, session.begin():
        lead = await crm.create_lead(
            session,
            title="Lead",
            new=NewItem(responsible_id=world.anna, phones=["01 44 55 66 77"], default_region="FR"),
        )
        company = await crm.create_company(
            session,
            name="ACME",
            new=NewItem(responsible_id=world.boris, emails=["Sales <SALES@Acme.Example>"]),
        )
        contact = await crm.create_contact(
            session,
            name="Zoé",
            company_id=company.id,
            new=NewItem(
                responsible_id=world.boris, phones=["+33 1 44 55 66 77 ext. 12"], emails=["zoe@acme.example"]
            ),
        )
        deal = await crm.create_deal(
            session, title="Big deal", new=NewItem(responsible_id=world.boris), contact_id=contact.id
        )
        company_deal = await crm.create_deal(
            session, title="Company deal", new=NewItem(), company_id=company.id
        )
        stranger = await crm.create_contact(session, name="Other", new=NewItem(phones=["+4930123456"]))
    return {
        "lead": lead,
        "company": company,
        "contact": contact,
        "deal": deal,
        "company_deal": company_deal,
        "stranger": stranger,
    }


async def test_c3_find_party_by_phone_finds_every_item_and_their_deals(db: Db, world: World) -> None:
    made = await _people(db, world)
    async with db.sessions() as session:
        knowledge = await crm.find_party(session, phone="+33144556677")

    assert knowledge.items == (
        KnownItem(made["contact"], world.boris, "active"),
        KnownItem(made["deal"], world.boris, "active"),
        KnownItem(made["lead"], world.anna, "active"),
    )
    assert not knowledge.is_employee and not knowledge.is_exception


async def test_o5_find_party_by_email_and_the_companys_deals(db: Db, world: World) -> None:
    made = await _people(db, world)
    async with db.sessions() as session:
        knowledge = await crm.find_party(session, email="sales@acme.example")
        both = await crm.find_party(session, phone="+33144556677", email="sales@acme.example")

    assert [i.ref for i in knowledge.items] == [made["company"], made["company_deal"]]
    assert {i.ref for i in both.items} == {
        made[k] for k in ("lead", "company", "contact", "deal", "company_deal")
    }


async def test_t8_t9_find_party_flags_employees_and_exceptions(db: Db, world: World) -> None:
    async with db.sessions() as session, session.begin():
        session.add(ExceptionEntry(kind="email", value="spam@x.example", normalized="spam@x.example"))
    async with db.sessions() as session:
        employee = await crm.find_party(session, phone="+33611223344")
        employee_mail = await crm.find_party(session, email="chloe@ourco.example")
        excepted = await crm.find_party(session, phone="+33199000001")
        excepted_mail = await crm.find_party(session, email="spam@x.example")
        nobody = await crm.find_party(session, phone="+33100000000")

    assert employee.is_employee and employee_mail.is_employee and not employee.is_exception
    assert excepted.is_exception and excepted_mail.is_exception and not excepted.is_employee
    assert nobody.items == () and not nobody.is_employee and not nobody.is_exception


async def test_find_party_is_one_statement_on_the_call_path(sqlite_db: Db, sqlite_world: World) -> None:
    db, world = sqlite_db, sqlite_world
    await _people(db, world)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.sessions() as session:
            knowledge = await crm.find_party(session, phone="+33144556677", email="zoe@acme.example")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert len(knowledge.items) == 3
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 1


async def test_find_party_uses_the_normalised_value_indexes(sqlite_db: Db) -> None:
    query = party_query(True, True).params(phone="+33144556677", email="a@b.example")
    statement = query.compile(sqlite_db.engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with sqlite_db.sessions() as session:
        plan = " ".join(
            str(r[-1]) for r in (await session.execute(sa.text(f"EXPLAIN QUERY PLAN {statement}"))).all()
        )
    assert "ix_item_phones_normalized" in plan and "ix_item_emails_normalized" in plan
    assert "SCAN item_phones" not in plan and "SCAN item_emails" not in plan


async def test_find_party_with_nothing_to_look_for_knows_nothing(sqlite_db: Db) -> None:
    async with sqlite_db.sessions() as session:
        knowledge = await crm.find_party(session)
    assert knowledge.items == ()


async def test_create_refuses_values_that_are_not_phones_or_addresses(
    sqlite_db: Db, sqlite_world: World
) -> None:
    async with sqlite_db.sessions() as session, session.begin():
        with pytest.raises(CrmError, match="'call me' is not a phone number"):
            await crm.create_lead(session, title="x", new=NewItem(phones=["call me"], default_region="FR"))
        with pytest.raises(CrmError, match="international form"):
            await crm.create_lead(session, title="x", new=NewItem(phones=["01 44 55 66 77"]))
        with pytest.raises(CrmError, match="not an email address"):
            await crm.create_contact(session, name="x", new=NewItem(emails=["nobody-at-example"]))
        with pytest.raises(CrmError, match="no phones or emails of its own"):
            await crm.create_deal(session, title="x", new=NewItem(phones=["+33144556677"]))
        with pytest.raises(CrmError, match="no pipeline with id 424242"):
            await crm.create_deal(session, title="x", new=NewItem(), pipeline_id=424242)


async def test_duplicate_forms_of_one_phone_are_stored_once(sqlite_db: Db, sqlite_world: World) -> None:
    async with sqlite_db.sessions() as session, session.begin():
        await crm.create_lead(
            session,
            title="x",
            new=NewItem(phones=["01 44 55 66 77", "+33144556677", "0033 1 44 55 66 77"], default_region="FR"),
        )
    assert await sqlite_db.count("item_phones") == 1


async def test_close_a_lead_and_a_deal_but_not_a_contact_nor_twice(db: Db, world: World) -> None:
    made = await _people(db, world)
    async with db.sessions() as session, session.begin():
        await crm.close_item(session, made["lead"])
        await crm.close_item(session, made["deal"])
        with pytest.raises(CrmError, match="only leads and deals are closed"):
            await crm.close_item(session, made["contact"])
        with pytest.raises(CrmError, match="is closed: only an active lead"):
            await crm.close_item(session, made["lead"])
        with pytest.raises(ItemNotFound, match="no deal with id 999"):
            await crm.close_item(session, ItemRef("deal", 999))
    async with db.sessions() as session:
        lead = await session.get(Lead, made["lead"].id)
        deal = await session.get(Deal, made["deal"].id)
        assert lead is not None and lead.status == "closed" and lead.closed_at is not None
        assert deal is not None and deal.status == "closed" and deal.closed_at is not None
        assert [e.kind for e in await timeline_of(session, made["deal"])] == ["closed"]
        knowledge = await crm.find_party(session, phone="+33144556677")
    assert {(i.ref.type, i.status) for i in knowledge.items} == {
        ("lead", "closed"),
        ("deal", "closed"),
        ("contact", "active"),
    }


async def test_an_activity_is_bound_to_several_items_and_only_existing_ones(
    sqlite_db: Db, sqlite_world: World
) -> None:
    made = await _people(sqlite_db, sqlite_world)
    async with sqlite_db.sessions() as session, session.begin():
        activity_id = await crm.add_activity(
            session,
            kind="email",
            direction="outbound",
            refs=[made["deal"], made["contact"], made["deal"]],
            responsible_id=sqlite_world.boris,
            subject="Offer",
            interaction_key="email:<m1@x>",
        )
        with pytest.raises(ItemNotFound, match="no contact with id 424242"):
            await crm.add_activity(
                session,
                kind="call",
                direction="inbound",
                refs=[ItemRef("contact", 424242)],
                responsible_id=None,
                subject="x",
            )
        with pytest.raises(CrmError, match="at least one item"):
            await crm.add_activity(
                session, kind="call", direction="inbound", refs=[], responsible_id=None, subject="x"
            )
    async with sqlite_db.sessions() as session:
        on_deal = await activities_of(session, made["deal"])
        on_contact = await activities_of(session, made["contact"])
    assert [a.id for a in on_deal] == [a.id for a in on_contact] == [activity_id]
    assert len(on_deal[0].bindings) == 2


async def test_conversion_refuses_wrong_targets_and_finished_leads(
    sqlite_db: Db, sqlite_world: World
) -> None:
    made = await _people(sqlite_db, sqlite_world)
    async with sqlite_db.sessions() as session, session.begin():
        with pytest.raises(CrmError, match="one or more of contact, company, deal"):
            await crm.convert_lead(session, made["lead"].id, to=("lead",), actor=SYSTEM)
        with pytest.raises(CrmError, match="one or more of"):
            await crm.convert_lead(session, made["lead"].id, to=(), actor=SYSTEM)
        await crm.convert_lead(session, made["lead"].id, to=("deal",), actor=SYSTEM)
        with pytest.raises(CrmError, match="is converted: only an active lead can be converted"):
            await crm.convert_lead(session, made["lead"].id, to=("contact",), actor=SYSTEM)
        with pytest.raises(ItemNotFound):
            await crm.convert_lead(session, 424242, to=("contact",), actor=SYSTEM)


async def test_set_responsible_writes_the_timeline_and_ignores_no_change(
    sqlite_db: Db, sqlite_world: World
) -> None:
    made = await _people(sqlite_db, sqlite_world)
    async with sqlite_db.sessions() as session, session.begin():
        await crm.set_responsible(session, made["lead"], sqlite_world.anna)  # already anna
        await crm.set_responsible(session, made["lead"], sqlite_world.boris)
        with pytest.raises(CrmError, match="no employee with id 999"):
            await crm.set_responsible(session, made["lead"], 999)
        entries = await timeline_of(session, made["lead"])
    assert [(e.kind, e.text) for e in entries] == [
        (
            "responsible_changed",
            f"Responsible changed from employee {sqlite_world.anna} to employee {sqlite_world.boris}",
        )
    ]


async def test_create_refuses_references_to_missing_rows_with_a_clear_error(
    sqlite_db: Db, sqlite_world: World
) -> None:
    async with sqlite_db.sessions() as session, session.begin():
        with pytest.raises(CrmError, match="no source with id 999"):
            await crm.create_lead(session, title="x", new=NewItem(source_id=999))
        with pytest.raises(CrmError, match="no employee with id 999"):
            await crm.create_company(session, name="x", new=NewItem(responsible_id=999))
        with pytest.raises(ItemNotFound, match="no contact with id 999"):
            await crm.create_deal(session, title="x", new=NewItem(), contact_id=999)
        with pytest.raises(ItemNotFound, match="no company with id 999"):
            await crm.create_contact(session, name="x", new=NewItem(), company_id=999)
    assert (
        await sqlite_db.count("leads") + await sqlite_db.count("deals") + await sqlite_db.count("contacts")
        == 0
    )


async def test_c3_the_routers_inline_lookup_knows_what_find_party_knows(sqlite_db: Db, sqlite_world: World) -> None:
    """The router's lookup without a session (InlinePartyLookup) reads the same query: the same answer
    for every kind of party, by phone, by email and by both."""
    db, world = sqlite_db, sqlite_world
    await _people(db, world)
    async with db.sessions() as session, session.begin():
        session.add(ExceptionEntry(kind="phone", value="+33199000002", normalized="+33199000002"))
    reads = InlineReads.for_url(db.url)
    assert reads is not None
    lookup = InlinePartyLookup(reads)
    try:
        asked: list[dict[str, str | None]] = [
            {"phone": "+33144556677"}, {"email": "sales@acme.example"}, {"email": "zoe@acme.example"},
            {"phone": "+33144556677", "email": "sales@acme.example"}, {"phone": "+4930123456"},
            {"phone": "+33611223344"}, {"email": "chloe@ourco.example"}, {"phone": "+33199000002"},
            {"phone": "+33100000000"}, {},
        ]
        for values in asked:
            async with db.sessions() as session:
                expected = await crm.find_party(session, **values)
            assert await lookup.find_party(**values) == expected, values
        assert (await lookup.find_party(phone="+33144556677")).items  # not everything is empty
        # A write after the connection opened is seen by the next lookup (each read is its own snapshot).
        async with db.sessions() as session, session.begin():
            await crm.create_lead(session, title="Late", new=NewItem(phones=["+33188000000"]))
        assert len((await lookup.find_party(phone="+33188000000")).items) == 1
    finally:
        lookup.close()


async def test_inline_reads_refuse_writes_and_report_failures_as_database_errors(sqlite_db: Db) -> None:
    reads = InlineReads.for_url(sqlite_db.url)
    assert reads is not None
    try:
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            await reads.rows(prepare(sa.delete(Lead)), {})
        with pytest.raises(sa.exc.OperationalError, match="no such table"):
            await reads.rows(prepare(sa.select(sa.text("1")).select_from(sa.table("not_a_table"))), {})
        with pytest.raises(ValueError, match="expand"):
            prepare(sa.select(Lead.id).where(Lead.id.in_(sa.bindparam("ids", expanding=True))))
        assert await reads.rows(prepare(sa.select(sa.func.count()).select_from(Lead)), {}) == [(0,)]
    finally:
        reads.close()
    with pytest.raises(sa.exc.OperationalError, match="closed"):
        await reads.rows(prepare(sa.select(sa.func.count()).select_from(Lead)), {})
    assert InlineReads.for_url("sqlite+aiosqlite:///:memory:") is None
    assert InlineReads.for_url("postgresql+asyncpg://u@localhost/db") is None
