"""Call hooks: an Interaction built from database state → decide → Decision + outbox; and the dry run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.crm_bridge.call_hooks import (
    SIMULATION_KEY,
    UnknownNumber,
    call_key,
    decide_call,
    plan_call,
    simulate_call,
    stored_plan,
    transfer_call,
)
from gateway.crm_bridge.linking import Action, LinkPlan
from gateway.storage.models import Decision, OutboxEntry
from tests.crm_bridge.conftest import Db, World, update_crm, update_number

TABLES = (
    "leads",
    "contacts",
    "companies",
    "deals",
    "activities",
    "activity_bindings",
    "timeline_entries",
    "item_phones",
    "outbox_entries",
    "idempotency_keys",
    "decisions",
)


async def snapshot(db: Db) -> dict[str, int]:
    return {t: await db.count(t) for t in TABLES}


async def test_c1_plan_call_stores_the_decision_with_its_rule_ids_and_queues_the_writes(
    db: Db, world: World
) -> None:
    async with db.sessions() as session, session.begin():
        plan = await plan_call(
            session,
            call_id="a84b4c76e66710@pc33",
            number=world.number,
            party_raw="01 44 55 66 77",
            direction="inbound",
        )
    async with db.sessions() as session:
        decision = await session.get(Decision, "call:a84b4c76e66710@pc33")
        [entry] = (await session.scalars(sa.select(OutboxEntry))).all()
        again = await stored_plan(session, "call:a84b4c76e66710@pc33")

    assert decision is not None and decision.channel == "call"
    assert LinkPlan.from_dict(decision.plan) == plan == again
    assert decision.plan["rule_ids"] == ["T3", "T5", "T4a", "T6", "T10"]
    assert (entry.interaction_key, entry.seq, entry.kind, entry.status) == (
        "call:a84b4c76e66710@pc33",
        1,
        "link_plan",
        "pending",
    )
    assert entry.payload["context"]["party_phone"] == "+33144556677"
    assert await db.count("leads") == 0  # the call never waits on the CRM write: the worker makes it


async def test_simulate_answers_what_the_call_would_get_and_writes_nothing(db: Db, world: World) -> None:
    before = await snapshot(db)
    async with db.sessions() as session:
        simulated = await simulate_call(session, world.number, "01 44 55 66 77", "inbound")
        await session.commit()  # even a commit by the caller has nothing to write
    assert await snapshot(db) == before

    async with db.sessions() as session, session.begin():
        real = await plan_call(
            session, call_id="real@pbx", number=world.number, party_raw="01 44 55 66 77", direction="inbound"
        )
    assert simulated.interaction_key == SIMULATION_KEY
    assert {**simulated.to_dict(), "interaction_key": None} == {**real.to_dict(), "interaction_key": None}


@pytest.mark.parametrize(
    ("party", "action", "rules"),
    [
        ("06 11 22 33 44", Action.NOTHING, ("T9",)),
        ("+33199000001", Action.RECORD_ONLY, ("T8",)),
        ("01 44 55 66 77", Action.CREATE_LEAD, ("T3", "T5", "T4a", "T6", "T10")),
    ],
)
async def test_simulate_reads_employees_exceptions_and_settings(
    sqlite_db: Db, sqlite_world: World, party: str, action: Action, rules: tuple[str, ...]
) -> None:
    async with sqlite_db.sessions() as session:
        plan = await simulate_call(session, sqlite_world.number, party)
    assert (plan.action, plan.rule_ids) == (action, rules)


async def test_t12_simulate_reads_the_crm_mode_settings(sqlite_db: Db, sqlite_world: World) -> None:
    await update_crm(
        sqlite_db, mode="simple", deal_pipeline_id=sqlite_world.sales_pipeline, deal_creation_mode="company"
    )
    async with sqlite_db.sessions() as session:
        plan = await simulate_call(session, sqlite_world.number, "01 44 55 66 77")
    assert (plan.action, plan.create, plan.pipeline_id) == (
        Action.CREATE_DEAL,
        ("deal", "company"),
        sqlite_world.sales_pipeline,
    )


async def test_plans_that_write_nothing_queue_nothing(sqlite_db: Db, sqlite_world: World) -> None:
    await update_number(sqlite_db, unknown_caller_action="offer_in_card")
    async with sqlite_db.sessions() as session, session.begin():
        for call_id, party in (
            ("emp", "06 11 22 33 44"),
            ("exc", "+33199000001"),
            ("card", "01 44 55 66 77"),
        ):
            await plan_call(
                session, call_id=call_id, number=sqlite_world.number, party_raw=party, direction="inbound"
            )
    assert await sqlite_db.count("decisions") == 3
    assert await sqlite_db.count("outbox_entries") == 0


async def test_c2_the_same_call_id_is_decided_once(sqlite_db: Db, sqlite_world: World) -> None:
    async with sqlite_db.sessions() as session, session.begin():
        first = await plan_call(
            session,
            call_id="dup@pbx",
            number=sqlite_world.number,
            party_raw="01 44 55 66 77",
            direction="inbound",
        )
    # Meanwhile the CRM changed; a retransmitted INVITE must still get the original decision.
    await update_crm(sqlite_db, mode="simple")
    async with sqlite_db.sessions() as session, session.begin():
        second = await plan_call(
            session,
            call_id="dup@pbx",
            number=sqlite_world.number,
            party_raw="01 44 55 66 77",
            direction="inbound",
        )
    assert second == first
    assert await sqlite_db.count("outbox_entries") == 1


async def test_the_number_is_found_in_any_written_form_and_unknown_numbers_are_refused(
    sqlite_db: Db, sqlite_world: World
) -> None:
    async with sqlite_db.sessions() as session:
        for form in ("+33 1 42 68 53 00", "+33142685300", "01 42 68 53 00", "sip:+33142685300@trunk"):
            decided = await decide_call(
                session, key="call:x", number=form, party_raw="+33144556677", direction="inbound"
            )
            assert decided.interaction.settings.source_id == sqlite_world.source, form
        with pytest.raises(UnknownNumber, match="is not one of the gateway's numbers"):
            await simulate_call(session, "+33 9 99 99 99 99", "+33144556677")


async def test_t10_queue_members_come_in_ring_order(sqlite_db: Db, sqlite_world: World) -> None:
    async with sqlite_db.sessions() as session:
        decided = await decide_call(
            session, key="call:x", number=sqlite_world.number, party_raw="+33144556677", direction="inbound"
        )
    assert decided.interaction.settings.queue_member_ids == (sqlite_world.anna, sqlite_world.boris)


async def test_bad_input_is_a_clear_error(sqlite_db: Db, sqlite_world: World) -> None:
    async with sqlite_db.sessions() as session:
        with pytest.raises(ValueError, match="Call-ID"):
            await plan_call(
                session, call_id="  ", number=sqlite_world.number, party_raw="x", direction="inbound"
            )
        with pytest.raises(ValueError):
            await simulate_call(session, sqlite_world.number, "+33144556677", "sideways")
        with pytest.raises(LookupError, match="no decision stored"):
            await transfer_call(session, call_id="never@pbx", transferred_to=sqlite_world.boris)
    assert call_key(" abc@h ") == "call:abc@h"


async def test_an_anonymous_caller_is_decided_without_a_phone(sqlite_db: Db, sqlite_world: World) -> None:
    async with sqlite_db.sessions() as session:
        decided = await decide_call(
            session,
            key="call:anon",
            number=sqlite_world.number,
            party_raw="sip:anonymous@anonymous.invalid",
            direction="inbound",
        )
    assert decided.interaction.party_phone is None
    assert decided.interaction.knowledge.items == ()


async def test_c2_two_nodes_deciding_one_call_id_at_once_agree_and_queue_once(pg_db: Db) -> None:
    """A retransmitted INVITE reaching two tasks (or two nodes) on one PostgreSQL at the same moment."""
    import asyncio

    from gateway.crm_bridge.outbox import OutboxWorker
    from gateway.crm_bridge.store import BuiltinCrm
    from tests.crm_bridge.conftest import seed_world

    world = await seed_world(pg_db)

    async def node() -> LinkPlan:
        async with pg_db.sessions() as session, session.begin():
            return await plan_call(
                session,
                call_id="raced@pbx",
                number=world.number,
                party_raw="01 44 55 66 77",
                direction="inbound",
            )

    first, second = await asyncio.gather(node(), node())
    await OutboxWorker(pg_db.sessions, BuiltinCrm()).run_once()

    assert first == second
    assert await pg_db.count("decisions") == 1
    assert await pg_db.count("outbox_entries") == 1
    assert await pg_db.count("leads") == 1


async def test_an_answered_call_completes_its_activity_and_a_missed_one_stays_open(
    db: Db, world: World
) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.crm_bridge.call_hooks import finish_call
    from gateway.crm_bridge.outbox import OutboxWorker
    from gateway.crm_bridge.store import BuiltinCrm
    from gateway.storage.models import Activity

    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    async with db.sessions() as session, session.begin():
        await plan_call(
            session,
            call_id="answered@pbx",
            number=world.number,
            party_raw="01 44 55 66 77",
            direction="inbound",
            now=start,
        )
        await plan_call(
            session,
            call_id="missed@pbx",
            number=world.number,
            party_raw="01 44 55 66 77",
            direction="inbound",
            now=start,
        )
        # Queued before the worker ran: order per Call-ID puts it after the activity is written.
        assert await finish_call(
            session,
            call_id="answered@pbx",
            answered_by=world.anna,
            duration_s=42.5,
            ended_at=start + timedelta(seconds=50),
        )
        assert await finish_call(
            session,
            call_id="missed@pbx",
            answered_by=None,
            duration_s=0,
            ended_at=start + timedelta(seconds=30),
        )
        assert not await finish_call(session, call_id="unknown@pbx", answered_by=None, duration_s=1)
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once(start + timedelta(minutes=1))

    async with db.sessions() as session:
        answered = await session.scalar(
            sa.select(Activity).where(Activity.interaction_key == "call:answered@pbx")
        )
        missed = await session.scalar(
            sa.select(Activity).where(Activity.interaction_key == "call:missed@pbx")
        )
    assert answered is not None and missed is not None
    assert answered.completed_at == start + timedelta(seconds=50)
    assert answered.details["outcome"] == "answered" and answered.details["duration_s"] == 42.5
    assert answered.details["answered_by"] == world.anna
    assert answered.deadline == start
    assert missed.completed_at is None and missed.details["outcome"] == "missed"
    assert await db.count("outbox_entries", "status = 'done'") == 4


async def test_c2_a_call_id_longer_than_the_key_columns_is_linked_once(pg_db: Db) -> None:
    """RFC 3261 §25.1 puts no bound on a Call-ID's length; PostgreSQL enforces the key columns' 255
    characters, so a long Call-ID must still give one key that fits (and the same key every time)."""
    from gateway.crm_bridge.outbox import OutboxWorker
    from gateway.crm_bridge.store import BuiltinCrm
    from tests.crm_bridge.conftest import seed_world

    world = await seed_world(pg_db)
    long_id = "x" * 300 + "@pbx.example"
    assert call_key(long_id) == call_key(long_id) and len(call_key(long_id)) <= 255
    assert call_key(long_id) != call_key("y" * 300 + "@pbx.example")
    for _ in range(2):  # a retransmitted INVITE
        async with pg_db.sessions() as session, session.begin():
            await plan_call(
                session, call_id=long_id, number=world.number, party_raw="01 44 55 66 77", direction="inbound"
            )
    await OutboxWorker(pg_db.sessions, BuiltinCrm()).run_once()
    assert (await pg_db.count("decisions"), await pg_db.count("leads")) == (1, 1)
