"""The outbox (SPEC C2, C4): applied once, in order per interaction key, retried with back-off.

Faults are injected into the REAL built-in store: ``FlakyCrm`` is ``BuiltinCrm`` whose chosen method
raises the first N times it is called (as a network CRM or a locked database would), then does the real
write. The worker, the handlers, the idempotency keys and the database are the production ones.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.crm_bridge.linking import Action, LinkPlan
from gateway.crm_bridge.outbox import (
    Backoff,
    OutboxWorker,
    PermanentOutboxError,
    apply_plan,
    enqueue,
    requeue_failed,
)
from gateway.crm_bridge.service import TRANSFER, PlanContext
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Lead, OutboxEntry
from tests.crm_bridge.conftest import Db, World, place_call

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class CrmDown(ConnectionError):
    """What the injected fault raises."""


#: The store's methods that carry out each named write: the outbox applies a plan through the
#: many-at-once ones (see gateway.crm_bridge.backend.BatchCrmBackend).
_CARRIED_BY = {"create_lead": "create_items", "add_activity": "add_activities"}


class FlakyCrm(BuiltinCrm):
    """The real store, failing the first ``failures`` calls that make the write ``method`` names (with
    `key`, only the calls that make it for that interaction)."""

    def __init__(self, method: str, failures: int, key: str | None = None) -> None:
        self.failures = {_CARRIED_BY.get(method, method): failures}
        self.key = key
        self.calls: dict[str, int] = {}

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        failures = super().__getattribute__("failures")
        if name not in failures:
            return attr
        calls = super().__getattribute__("calls")
        key = super().__getattribute__("key")

        async def flaky(*args: Any, **kwargs: Any) -> Any:
            specs = args[1] if len(args) > 1 else ()
            if key is None or any(spec.new.interaction_key == key if hasattr(spec, "new") else
                                  spec.interaction_key == key for spec in specs):
                calls[name] = calls.get(name, 0) + 1
                if calls[name] <= failures[name]:
                    raise CrmDown(f"injected fault #{calls[name]} in {name}")
            return await attr(*args, **kwargs)

        return flaky


def lead_plan(key: str, world: World) -> tuple[LinkPlan, PlanContext]:
    plan = LinkPlan(
        key,
        Action.CREATE_LEAD,
        create=("lead",),
        responsible_id=world.anna,
        source_id=world.source,
        record_activity=True,
        rule_ids=("T4a",),
    )
    return plan, PlanContext(channel="call", direction="inbound", party_phone="+33144556677", occurred_at=T0)


async def entries(db: Db) -> list[OutboxEntry]:
    async with db.sessions() as session:
        return list((await session.scalars(sa.select(OutboxEntry).order_by(OutboxEntry.id))).all())


async def test_c4_a_failing_write_is_retried_with_backoff_and_applied_once(db: Db, world: World) -> None:
    crm = FlakyCrm("create_lead", failures=2)
    worker = OutboxWorker(db.sessions, crm, backoff=Backoff(base=10, cap=60))
    plan, ctx = lead_plan("call:flaky@pbx", world)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)

    first = await worker.run_once(T0)
    [entry] = await entries(db)
    assert (first.retried, first.applied) == (1, 0)
    assert (entry.status, entry.attempts) == ("pending", 1)
    assert entry.next_attempt_at == T0 + timedelta(seconds=10)
    assert "injected fault #1" in (entry.last_error or "")
    assert await db.count("leads") == 0  # the failed attempt left nothing behind

    early = await worker.run_once(T0 + timedelta(seconds=9))  # not due yet
    assert (early.applied, early.retried) == (0, 0)

    await worker.run_once(T0 + timedelta(seconds=10))
    [entry] = await entries(db)
    assert (entry.attempts, entry.next_attempt_at) == (2, T0 + timedelta(seconds=30))  # 10 s, then 20 s

    last = await worker.run_once(T0 + timedelta(seconds=30))
    [entry] = await entries(db)
    assert last.applied == 1
    assert (entry.status, entry.attempts, entry.last_error) == ("done", 3, None)
    assert entry.applied_at == T0 + timedelta(seconds=30)
    assert await db.count("leads") == 1
    assert await db.count("activities") == 1

    assert (await worker.run_once(T0 + timedelta(hours=1))).applied == 0  # done stays done
    assert await db.count("leads") == 1


async def test_c2_the_same_interaction_key_enqueued_twice_creates_one_item(db: Db, world: World) -> None:
    plan, ctx = lead_plan("call:twice@pbx", world)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)
        await apply_plan(session, plan, ctx, now=T0)

    report = await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)

    assert report.applied == 2
    assert [(e.seq, e.status) for e in await entries(db)] == [(1, "done"), (2, "done")]
    assert await db.count("leads") == 1
    assert await db.count("activities") == 1
    assert await db.count("idempotency_keys", "key LIKE :k", k="call:twice@pbx:%") == 2  # lead + activity


async def test_c2_a_crash_after_the_write_before_done_does_not_duplicate(
    sqlite_db: Db, sqlite_world: World
) -> None:
    """The write committed with its idempotency key but the entry was left pending (as after a crash
    between two transactions of an older design, or an operator's requeue): re-applying makes nothing new."""
    db, world = sqlite_db, sqlite_world
    plan, ctx = lead_plan("call:crash@pbx", world)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)
    await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)
    async with db.sessions() as session, session.begin():
        await session.execute(sa.update(OutboxEntry).values(status="pending"))

    report = await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)

    assert report.applied == 1
    assert await db.count("leads") == 1
    assert await db.count("activities") == 1


async def test_c4_order_per_key_is_kept_while_an_earlier_entry_is_retried(db: Db, world: World) -> None:
    """A transfer (T11) queued behind a lead creation must not run before it, even when the creation
    fails first; another interaction's entries are not held up meanwhile."""
    # Twice: the batch of both creations fails, then ordered@pbx's on its own.
    crm = FlakyCrm("create_lead", failures=2, key="call:ordered@pbx")
    worker = OutboxWorker(db.sessions, crm, backoff=Backoff(base=5, cap=5))
    plan, ctx = lead_plan("call:ordered@pbx", world)
    other, other_ctx = lead_plan("call:other@pbx", world)
    other_ctx = PlanContext(channel="call", direction="inbound", party_phone="+33155555555")
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)
        await enqueue(session, "call:ordered@pbx", TRANSFER, {"responsible_id": world.boris}, now=T0)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, other, other_ctx, now=T0)

    first = await worker.run_once(T0)  # ordered@pbx's lead cannot be created yet
    assert (first.retried, first.applied) == (1, 1)  # other@pbx went through
    by_key = {(e.interaction_key, e.seq): e.status for e in await entries(db)}
    assert by_key == {
        ("call:ordered@pbx", 1): "pending",
        ("call:ordered@pbx", 2): "pending",  # waits for seq 1, not applied out of order
        ("call:other@pbx", 1): "done",
    }

    second = await worker.run_once(T0 + timedelta(seconds=5))
    assert second.applied == 2
    async with db.sessions() as session:
        lead = await session.scalar(sa.select(Lead).where(Lead.interaction_key == "call:ordered@pbx"))
    assert lead is not None and lead.responsible_id == world.boris  # the transfer landed on the lead


async def test_c4_a_permanent_error_parks_the_entry_and_holds_its_key_until_requeued(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    plan, ctx = lead_plan("call:bad@pbx", world)
    async with db.sessions() as session, session.begin():
        await enqueue(session, "call:bad@pbx", "no_such_kind", {}, now=T0)
        await apply_plan(session, plan, ctx, now=T0)

    report = await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)

    assert (report.failed, report.applied) == (1, 0)
    [bad, held] = await entries(db)
    assert bad.status == "failed" and "no handler for outbox entry kind 'no_such_kind'" in (
        bad.last_error or ""
    )
    assert held.status == "pending"
    assert await db.count("leads") == 0

    async with db.sessions() as session, session.begin():
        await session.execute(
            sa.update(OutboxEntry)
            .where(OutboxEntry.id == bad.id)
            .values(kind="transfer", payload={"responsible_id": world.boris})
        )
        assert await requeue_failed(session, "call:bad@pbx", now=T0) == 1
    assert (await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)).applied == 2
    assert await db.count("leads") == 1


async def test_c4_malformed_payload_is_permanent_not_retried_forever(sqlite_db: Db) -> None:
    db = sqlite_db
    async with db.sessions() as session, session.begin():
        await enqueue(session, "call:junk@pbx", "link_plan", {"plan": {"action": "create_lead"}}, now=T0)

    report = await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)

    [entry] = await entries(db)
    assert report.failed == 1 and entry.status == "failed"
    assert "malformed link_plan payload" in (entry.last_error or "")


async def test_c4_max_attempts_gives_up_and_says_why(sqlite_db: Db, sqlite_world: World) -> None:
    db, world = sqlite_db, sqlite_world
    worker = OutboxWorker(
        db.sessions, FlakyCrm("create_lead", failures=99), max_attempts=2, backoff=Backoff(base=1, cap=1)
    )
    plan, ctx = lead_plan("call:down@pbx", world)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)

    await worker.run_once(T0)
    await worker.run_once(T0 + timedelta(seconds=1))

    [entry] = await entries(db)
    assert (entry.status, entry.attempts) == ("failed", 2)
    assert "CrmDown: injected fault #2" in (entry.last_error or "")


def test_backoff_doubles_and_is_capped() -> None:
    backoff = Backoff(base=2, cap=60)
    assert [backoff.delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 6, 99)] == [2, 4, 8, 16, 32, 60, 60]


async def test_enqueue_numbers_entries_per_key(sqlite_db: Db) -> None:
    db = sqlite_db
    async with db.sessions() as session, session.begin():
        a1 = await enqueue(session, "call:a", TRANSFER, {"responsible_id": 1}, now=T0)
        b1 = await enqueue(session, "call:b", TRANSFER, {"responsible_id": 1}, now=T0)
        a2 = await enqueue(session, "call:a", TRANSFER, {"responsible_id": 2}, now=T0)
    assert [(e.interaction_key, e.seq) for e in (a1, b1, a2)] == [("call:a", 1), ("call:b", 1), ("call:a", 2)]


async def test_c2_two_workers_racing_on_postgresql_create_one_lead(pg_db: Db) -> None:
    """Two workers (as on two gateway nodes) run at once on one PostgreSQL: SKIP LOCKED hands each entry
    to one of them, and the idempotency keys stop a second lead even for two entries of one call."""
    from tests.crm_bridge.conftest import seed_world

    world = await seed_world(pg_db)
    plan, ctx = lead_plan("call:race@pbx", world)
    async with pg_db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)
        await apply_plan(session, plan, ctx, now=T0)

    reports = await asyncio.gather(
        *(OutboxWorker(pg_db.sessions, BuiltinCrm()).run_once(T0) for _ in range(2))
    )

    assert sum(r.applied for r in reports) == 2
    assert [e.status for e in await entries(pg_db)] == ["done", "done"]
    assert await pg_db.count("leads") == 1
    assert await pg_db.count("activities") == 1


@pytest.mark.parametrize("failures", [1, 3])
async def test_c4_a_call_whose_crm_write_fails_is_written_later_once(
    sqlite_db: Db, sqlite_world: World, failures: int
) -> None:
    db, world = sqlite_db, sqlite_world
    crm = FlakyCrm("add_activity", failures=failures)
    await place_call(db, world, call_id="late@pbx", party="01 44 55 66 77", backend=crm)
    worker = OutboxWorker(db.sessions, crm, backoff=Backoff(base=1, cap=1))
    now = datetime.now(UTC)
    for step in range(1, failures + 1):
        await worker.run_once(now + timedelta(seconds=step))

    assert await db.count("leads") == 1  # the lead and its activity went in together, once
    assert await db.count("activities") == 1
    [entry] = await entries(db)
    assert (entry.status, entry.attempts) == ("done", failures + 1)


async def test_a_handler_raising_a_permanent_error_is_not_retried(sqlite_db: Db) -> None:
    calls: list[int] = []

    async def refuse(session: Any, backend: Any, entry: OutboxEntry) -> None:
        calls.append(entry.id)
        raise PermanentOutboxError("the CRM refused this record for good")

    db = sqlite_db
    async with db.sessions() as session, session.begin():
        await enqueue(session, "email:<x@y>", "custom", {}, now=T0)
    worker = OutboxWorker(db.sessions, BuiltinCrm(), handlers={"custom": refuse})

    await worker.run_once(T0)
    await worker.run_once(T0 + timedelta(days=1))

    [entry] = await entries(db)
    assert len(calls) == 1
    assert (entry.status, entry.attempts) == ("failed", 1)
    assert entry.last_error == "PermanentOutboxError: the CRM refused this record for good"


async def test_run_forever_applies_what_is_queued_when_woken_and_stops_on_request(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    worker = OutboxWorker(db.sessions, BuiltinCrm())
    stop = asyncio.Event()
    # An hour between polls: only wake() can make the entry go through within this test.
    task = asyncio.create_task(worker.run_forever(poll_interval=3600, stop=stop))
    plan, ctx = lead_plan("call:woken@pbx", world)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx)
    worker.wake()

    for _ in range(500):
        if await db.count("outbox_entries", "status = 'done'") == 1:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=10)

    assert await db.count("leads") == 1
    assert task.done() and task.exception() is None


async def test_a_crm_refusal_is_permanent_and_says_what_to_fix(sqlite_db: Db, sqlite_world: World) -> None:
    db, world = sqlite_db, sqlite_world
    plan, ctx = lead_plan("call:gone@pbx", world)
    async with db.sessions() as session, session.begin():
        await apply_plan(session, plan, ctx, now=T0)
        await enqueue(session, "call:gone@pbx", TRANSFER, {"responsible_id": 424242}, now=T0)

    report = await OutboxWorker(db.sessions, BuiltinCrm()).run_once(T0)

    assert (report.applied, report.failed) == (1, 1)
    [_, transfer] = await entries(db)
    assert transfer.status == "failed"
    assert transfer.last_error == "CrmError: there is no employee with id 424242 to be responsible"


async def test_c4_a_database_outage_is_logged_once_not_at_every_poll(
    sqlite_db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.exc import OperationalError

    caplog.set_level(logging.INFO, logger="gateway.crm_bridge.outbox")
    down = True

    def sessions() -> Any:
        if down:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("database down"))
        return sqlite_db.sessions()

    worker = OutboxWorker(sessions, BuiltinCrm())  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(poll_interval=0.01, stop=stop))
    await asyncio.sleep(0.2)  # about twenty failed polls
    down = False
    for _ in range(100):
        if "outbox runs again" in caplog.text:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert [r.levelname for r in caplog.records if r.name == "gateway.crm_bridge.outbox"] == ["ERROR", "INFO"]
    assert "outbox runs again" in caplog.text


class FailsSecondLead(BuiltinCrm):
    """The real store that cannot create the lead of call:b@pbx for now; counts the leads it was asked for."""

    def __init__(self, *, writes_in_session: bool) -> None:
        self.writes_in_session = writes_in_session  # type: ignore[misc]
        self.lead_calls = 0

    async def create_items(self, session: Any, specs: Any, **kwargs: Any) -> Any:
        self.lead_calls += sum(spec.item_type == "lead" for spec in specs)
        if any(spec.new.interaction_key == "call:b@pbx" for spec in specs):
            raise CrmDown("injected fault in the lead of call:b@pbx")
        return await super().create_items(session, specs, **kwargs)


@pytest.mark.parametrize("in_session", [True, False], ids=["batched", "one-by-one"])
async def test_c4_one_failing_entry_of_a_batch_costs_the_others_nothing(
    sqlite_db: Db, sqlite_world: World, in_session: bool
) -> None:
    """Entries are applied in batches when the backend writes in the session: the one that fails is
    recorded as its own attempt, the others are written once (the rolled-back batch leaves no item).
    A backend writing elsewhere is never batched: each entry reaches it once."""
    db, world = sqlite_db, sqlite_world
    crm = FailsSecondLead(writes_in_session=in_session)
    keys = ["call:a@pbx", "call:b@pbx", "call:c@pbx"]
    for key in keys:
        plan, ctx = lead_plan(key, world)
        async with db.sessions() as session, session.begin():
            await apply_plan(session, plan, ctx, now=T0)

    report = await OutboxWorker(db.sessions, crm).run_once(T0)

    assert (report.applied, report.retried) == (2, 1)
    status = {e.interaction_key: (e.status, e.attempts) for e in await entries(db)}
    assert status == {"call:a@pbx": ("done", 1), "call:b@pbx": ("pending", 1), "call:c@pbx": ("done", 1)}
    async with db.sessions() as session:
        leads = (await session.scalars(sa.select(Lead.interaction_key).order_by(Lead.id))).all()
    assert sorted(leads) == ["call:a@pbx", "call:c@pbx"]  # one lead each, none left by the rolled-back batch
    # Batched: the three leads were asked for in the batch, which failed as a whole, then each on its own.
    assert crm.lead_calls == (6 if in_session else 3)
