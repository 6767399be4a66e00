"""The models through the async session, on a migrated SQLite file and a migrated real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from gateway.storage.models import (
    CRM_SETTINGS_ID,
    Activity,
    ActivityBinding,
    Contact,
    CrmSettings,
    Employee,
    EmployeePhone,
    ExceptionEntry,
    ItemEmail,
    ItemPhone,
    Lead,
    LeadStatus,
    Number,
    OutboxEntry,
    Pipeline,
    QueueGroup,
    QueueMember,
    Source,
)
from gateway.storage.session import make_engine, make_sessionmaker


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_lead_with_phones_and_emails_round_trip(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        call = await session.scalar(sa.select(Source).where(Source.code == "CALL"))
        ann = Employee(name="Ann", extension="101")
        lead = Lead(
            title="Call from +33 6 01 02 03 04", source=call, responsible=ann,
            interaction_key="call:abc@host",
            phones=[ItemPhone(value="06 01 02 03 04", normalized="+33601020304")],
        )
        lead.emails.append(ItemEmail(value="Bob <Bob@Example.FR>", normalized="bob@example.fr"))
        session.add(lead)
        # A contact with the same phone: a phone lookup must return both items, each with its own type.
        session.add(Contact(name="Bob", phones=[ItemPhone(value="+33601020304", normalized="+33601020304")]))

    async with sessions() as session:
        found = (await session.execute(
            sa.select(ItemPhone.item_type, ItemPhone.item_id).where(ItemPhone.normalized == "+33601020304")
            .order_by(ItemPhone.item_type)
        )).all()
        loaded = await session.scalar(
            sa.select(Lead).options(selectinload(Lead.phones), selectinload(Lead.emails))
            .where(Lead.interaction_key == "call:abc@host")
        )
    assert loaded is not None
    assert [(t, i) for t, i in found] == [("contact", found[0][1]), ("lead", loaded.id)]
    assert loaded.status == LeadStatus.ACTIVE
    assert [(p.item_type, p.value) for p in loaded.phones] == [("lead", "06 01 02 03 04")]
    assert [(e.item_type, e.normalized) for e in loaded.emails] == [("lead", "bob@example.fr")]
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)


async def test_deleting_a_lead_deletes_its_phones_and_unlinks_converted_items(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        lead = Lead(title="x", phones=[ItemPhone(value="1", normalized="+331")])
        contact = Contact(name="c", lead=lead)
        lead.contact = contact
        session.add_all([lead, contact])
    async with sessions() as session, session.begin():
        await session.delete(await session.get(Lead, lead.id))
    async with sessions() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(ItemPhone)) == 0
        # ON DELETE SET NULL (on SQLite only when make_engine turned foreign keys on).
        assert (await session.get(Contact, contact.id)).lead_id is None


async def test_exception_entry_is_unique_per_kind(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        session.add(ExceptionEntry(kind="phone", value="06 01", normalized="+33601"))
        session.add(ExceptionEntry(kind="email", value="+33601", normalized="+33601"))
    async with sessions() as session:
        session.add(ExceptionEntry(kind="phone", value="+33 601", normalized="+33601"))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_outbox_interaction_key_and_seq_are_unique(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        session.add(OutboxEntry(interaction_key="call:1", seq=1, kind="create_lead", payload={"a": 1}))
        session.add(OutboxEntry(interaction_key="call:1", seq=2, kind="add_activity", payload={}))
        session.add(OutboxEntry(interaction_key="call:2", seq=1, kind="create_lead", payload={}))
    async with sessions() as session:
        session.add(OutboxEntry(interaction_key="call:1", seq=2, kind="add_activity", payload={}))
        with pytest.raises(IntegrityError):
            await session.commit()
    async with sessions() as session:
        first = await session.scalar(sa.select(OutboxEntry).where(OutboxEntry.seq == 1).order_by(OutboxEntry.id))
    assert (first.status, first.attempts, first.payload) == ("pending", 0, {"a": 1})


async def test_timestamps_are_stored_in_utc_and_naive_ones_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    paris_summer = timezone(timedelta(hours=2))
    deadline = datetime(2026, 7, 1, 18, 30, tzinfo=paris_summer)
    async with sessions() as session, session.begin():
        session.add(Activity(kind="call", direction="inbound", deadline=deadline,
                             bindings=[ActivityBinding(item_type="lead", item_id=7)]))
    async with sessions() as session:
        activity = await session.scalar(sa.select(Activity))
        assert activity.deadline == deadline
        assert activity.deadline.tzinfo == UTC and activity.deadline.hour == 16
        assert [(b.item_type, b.item_id) for b in activity.bindings] == [("lead", 7)]
        activity.completed_at = datetime(2026, 7, 1, 19, 0)
        with pytest.raises(StatementError, match="naive datetime"):
            await session.commit()


async def test_bad_enum_values_are_refused_in_python_and_by_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(ValueError, match="status must be one of active, converted, closed"):
        Lead(title="x", status="open")
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await session.execute(sa.insert(Lead.__table__).values(
                title="x", status="open", created_at=datetime.now(UTC)))


async def test_crm_settings_is_a_single_seeded_row(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        settings = await session.get(CrmSettings, CRM_SETTINGS_ID)
        general = await session.scalar(sa.select(Pipeline).where(Pipeline.is_default))
        assert settings is not None and settings.mode == "classic" and general.name == "General"
        session.add(CrmSettings(id=2))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_queue_members_load_in_position_order_with_the_number(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        ann, bob, cid = Employee(name="Ann"), Employee(name="Bob"), Employee(name="Cid")
        group = QueueGroup(name="Sales", members=[
            QueueMember(employee=cid, position=3), QueueMember(employee=ann, position=1),
            QueueMember(employee=bob, position=2),
        ])
        session.add(Number(number="+33 1 23 45 67 89", default_region="fr", queue_group=group))
    async with sessions() as session:
        number = await session.scalar(
            sa.select(Number).options(selectinload(Number.queue_group)).where(Number.number.like("+33%"))
        )
        members = number.queue_group.members
        names = [(await m.awaitable_attrs.employee).name for m in members]
    assert names == ["Ann", "Bob", "Cid"]
    assert (number.default_region, number.kind, number.unknown_caller_action, number.create_for) == (
        "FR", "rented", "auto_lead", "all"
    )
    assert number.route_known_to_responsible is False and number.change_responsible_on_transfer is False


async def test_deleting_an_employee_cascades_to_profile_phones_in_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        ann = Employee(name="Ann", phones=[EmployeePhone(value="06", normalized="+336")])
        session.add(ann)
    async with sessions() as session, session.begin():
        # Core delete: only the database's ON DELETE CASCADE can remove the phone.
        await session.execute(sa.delete(Employee).where(Employee.id == ann.id))
    async with sessions() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(EmployeePhone)) == 0
