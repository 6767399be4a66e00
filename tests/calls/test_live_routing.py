"""Live calls through the router and the journal, in process over a real database (SQLite and PostgreSQL).

The call's SIP side is played by the test (the events the B2BUA emits); everything else is the product:
the directory snapshot, the CRM lookup within the routing budget, the routing steps, the call log and
the CRM writes through the outbox.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from gateway.b2bua.events import CallStarted
from gateway.calls.keyed_work import KeyedWork
from gateway.crm_bridge.store import BuiltinCrm
from gateway.routing.targets import TargetKind
from tests.calls.conftest import LiveWorld, make_world

NEW = "0611223344"
NEW_E164 = "+33611223344"


async def test_r1_r2_t4a_t10_new_caller_rings_the_queue_in_order_gets_a_lead_and_a_logged_call(
    live: LiveWorld,
) -> None:
    decision = await live.route(live.request("c1", NEW))
    assert [step.targets[0].employee_id for step in decision.steps] == [live.alice, live.bruno]
    assert {"R1", "R2.in_order"} <= set(decision.rule_ids)
    live.answer_and_hang_up("c1", live.bruno, decision)
    await live.settle()
    [call] = await live.rows("SELECT outcome, status, answered_by_id, offered_ids, party_e164, crm FROM calls")
    assert (call.outcome, call.status, call.answered_by_id, call.party_e164) == ("answered", 200, live.bruno, NEW_E164)
    [lead] = await live.rows("SELECT responsible_id FROM leads")
    assert lead.responsible_id == live.alice  # T10: position 1, whoever answered
    [activity] = await live.rows("SELECT completed_at FROM activities WHERE interaction_key = 'call:c1'")
    assert activity.completed_at is not None


async def test_t7_known_caller_rings_their_responsible_first(live: LiveWorld) -> None:
    first = await live.route(live.request("c1", NEW))
    live.answer_and_hang_up("c1", live.alice, first)
    await live.settle()
    async with live.sessionmaker() as session:  # the client now belongs to Bruno
        from sqlalchemy import text
        await session.execute(text("UPDATE leads SET responsible_id = :b"), {"b": live.bruno})
        await session.commit()
    second = await live.route(live.request("c2", NEW))
    assert second.steps[0].targets[0].employee_id == live.bruno and second.steps[0].ring_time == 20.0
    assert "T7" in second.rule_ids


async def test_r3_busy_and_unregistered_members_are_skipped(live: LiveWorld) -> None:
    live.busy.add(live.alice)
    live.registered.discard("1002")
    decision = await live.route(live.request("c1", NEW))
    assert decision.steps == () and decision.status == 480
    assert {"R3.busy", "R3.no_phone"} <= set(decision.rule_ids)


async def test_r1_unknown_number_is_404_and_logged_as_rejected(live: LiveWorld) -> None:
    decision = await live.route(live.request("c1", NEW, dialled="0999999999"))
    assert decision.status == 404
    live.give_up("c1", 404)
    await live.settle()
    [call] = await live.rows("SELECT outcome, status, number_id FROM calls")
    assert (call.outcome, call.status, call.number_id) == ("rejected", 404, None)
    assert await live.rows("SELECT * FROM decisions") == []


async def test_r6_anonymous_caller_is_logged_never_a_lead(live: LiveWorld) -> None:
    decision = await live.route(live.request("c1", "anonymous"))
    assert decision.forwards
    live.give_up("c1", 487)
    await live.settle()
    [call] = await live.rows("SELECT outcome, party_e164, routing, crm FROM calls")
    assert call.outcome == "missed" and call.party_e164 is None
    assert "R6" in str(call.crm)
    assert await live.rows("SELECT id FROM leads") == []


async def test_c2_cancel_during_the_lookup_is_a_missed_call_with_one_lead(live: LiveWorld) -> None:
    request = live.request("c1", NEW)
    live.journal.call_started(CallStarted("c1", request, 0.0))
    live.give_up("c1", 487)  # the caller hung up before routing answered
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    live.router.route(request, lambda decision, now: done.set_result(decision))
    await asyncio.wait_for(done, 5.0)
    await live.settle()
    [call] = await live.rows("SELECT outcome, status FROM calls")
    assert (call.outcome, call.status) == ("missed", 487)
    assert len(await live.rows("SELECT id FROM leads")) == 1
    [activity] = await live.rows("SELECT completed_at FROM activities")
    assert activity.completed_at is None  # a missed call stays open, to call back


async def test_c2_two_simultaneous_calls_from_one_new_caller_give_one_lead(live: LiveWorld) -> None:
    worker = asyncio.get_running_loop().create_task(live.worker.run_forever(poll_interval=0.05))
    live.journal.wake_outbox = live.worker.wake
    try:
        first, second = await asyncio.gather(live.route(live.request("c1", NEW)), live.route(live.request("c2", NEW)))
        live.answer_and_hang_up("c1", live.alice, first)
        live.answer_and_hang_up("c2", live.bruno, second)
        await live.settle()
    finally:
        worker.cancel()
    assert len(await live.rows("SELECT id FROM leads")) == 1
    assert len(await live.rows("SELECT id FROM activities WHERE kind = 'call'")) == 2


async def test_c2_the_same_call_journaled_twice_writes_once(live: LiveWorld) -> None:
    decision = await live.route(live.request("c1", NEW))
    live.journal.routed(live.journal._calls["c1"])  # a retransmitted INVITE routed again
    live.answer_and_hang_up("c1", live.alice, decision)
    await live.settle()
    assert len(await live.rows("SELECT id FROM leads")) == 1
    assert len(await live.rows("SELECT id FROM calls")) == 1
    assert len(await live.rows("SELECT id FROM activities")) == 1


class SlowCrm(BuiltinCrm):
    """The built-in CRM behind a lookup slower than the routing budget."""

    async def find_party(self, session: Any, *, phone: str | None = None, email: str | None = None) -> Any:
        await asyncio.sleep(0.5)
        return await super().find_party(session, phone=phone, email=email)


async def test_r1_past_the_routing_budget_the_queue_rings_and_the_crm_outcome_is_written_later(
    sqlite_url: str,
) -> None:
    world = await make_world(sqlite_url, backend=SlowCrm(), budget=0.05)()
    try:
        decision = await world.route(world.request("c1", NEW))
        assert "R1.no_crm_knowledge" in decision.rule_ids
        assert decision.steps[0].targets[0].kind is TargetKind.EMPLOYEE
        assert world.router.over_budget == 1
        world.answer_and_hang_up("c1", world.alice, decision)
        await world.settle()
        assert len(await world.rows("SELECT id FROM leads")) == 1
        [call] = await world.rows("SELECT crm FROM calls")
        assert "T4a" in str(call.crm)
    finally:
        await world.close()


async def test_r6_a_caller_identified_by_a_trusted_asserted_identity_keeps_it_when_decided_past_the_budget(
    sqlite_url: str,
) -> None:
    """The journal decides what the router could not: on the caller as the router identified them (the
    P-Asserted-Identity of a trusted trunk), not on the anonymous From."""
    world = await make_world(sqlite_url, backend=SlowCrm(), budget=0.05)()
    try:
        request = world.request("c1", "anonymous", asserted="sip:+33655000603@trunk.test")
        decision = await world.route(request)
        assert world.router.over_budget == 1
        world.answer_and_hang_up("c1", world.alice, decision)
        await world.settle()
        [call] = await world.rows("SELECT party_e164, crm FROM calls")
        assert call.party_e164 == "+33655000603" and "T4a" in str(call.crm), call
        assert len(await world.rows("SELECT id FROM leads")) == 1
    finally:
        await world.close()


async def test_r1_database_down_routes_to_the_queue_group_from_the_snapshot(sqlite_url: str) -> None:
    from gateway.storage.session import make_engine, make_sessionmaker

    down_engine = make_engine("sqlite+aiosqlite:////nonexistent-dir/gateway.db")
    world = await make_world(sqlite_url, router_sessionmaker=make_sessionmaker(down_engine))()
    try:
        decision = await world.route(world.request("c1", NEW))
        assert "R1.no_crm_knowledge" in decision.rule_ids
        assert [step.targets[0].employee_id for step in decision.steps] == [world.alice, world.bruno]
    finally:
        await world.close()
        await down_engine.dispose()


async def test_r1_an_employee_phone_dialling_an_extension_rings_that_employee(live: LiveWorld) -> None:
    decision = await live.route(live.request("c1", "1001", dialled="1002", trusted=False, authenticated_user="1001"))
    assert decision.targets[0].employee_id == live.bruno and "R1.extension" in decision.rule_ids
    assert decision.caller_employee_id == live.alice  # R3: Alice is on a call while this one lasts


async def test_an_unauthenticated_stranger_cannot_dial_an_extension_directly(live: LiveWorld) -> None:
    decision = await live.route(live.request("c1", "123", dialled="1002", trusted=False))
    assert decision.status == 404


class _Outage:
    """The journal's sessionmaker while the database is down (`down`), then the real one again."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.down = True

    def __call__(self) -> Any:
        if self.down:
            raise OperationalError("connect", {}, ConnectionRefusedError("database down"))
        return self.real()


async def test_c4_calls_from_one_new_caller_during_an_outage_are_decided_in_call_order(db_url: str) -> None:
    """The first call's writes have backed off longer than the second's when the database comes back:
    the second must still wait, so the first call creates the lead and the second attaches (T4a, T7)."""
    from gateway.storage.session import make_engine, make_sessionmaker

    down_engine = make_engine("sqlite+aiosqlite:////nonexistent-dir/gateway.db")
    world = await make_world(db_url, router_sessionmaker=make_sessionmaker(down_engine))()
    outage = _Outage(world.journal.sessionmaker)
    world.journal.sessionmaker = outage  # type: ignore[assignment]
    world.journal.work = KeyedWork(first_delay=0.05, max_delay=5.0)
    worker = asyncio.get_running_loop().create_task(world.worker.run_forever(poll_interval=0.05))
    world.journal.wake_outbox = world.worker.wake
    try:
        first = await world.route(world.request("c1", NEW))
        await asyncio.sleep(0.8)  # c1's writes are now retried about every 0.8 s, c2's will be at 0.05 s
        second = await world.route(world.request("c2", NEW))
        world.answer_and_hang_up("c1", world.bruno, first)
        world.answer_and_hang_up("c2", world.bruno, second)
        await asyncio.sleep(0.1)
        outage.down = False
        await world.settle()
        leads = await world.rows("SELECT interaction_key FROM leads")
        assert leads == [("call:c1",)]
        decided = {call_id: json.loads(crm) if isinstance(crm, str) else crm  # SQLite gives JSON as text
                   for call_id, crm in await world.rows("SELECT call_id, crm FROM calls")}
        assert decided["c1"]["action"] == "create_lead" and decided["c2"]["action"] == "attach", decided
        assert len(await world.rows("SELECT id FROM activities WHERE kind = 'call'")) == 2
    finally:
        worker.cancel()
        await world.close()
        await down_engine.dispose()


async def test_new_callers_remembered_for_their_next_call_are_forgotten_after_a_while(live: LiveWorld) -> None:
    from gateway.calls import journal as journal_module

    await live.route(live.request("c1", NEW))
    live.give_up("c1")
    await live.settle()
    assert NEW_E164 in live.journal._creating
    later = asyncio.get_running_loop().time() + journal_module.CREATION_MEMORY + 1
    live.journal._forget_old_creations(later)
    assert live.journal._creating == {}


async def test_an_extension_dialled_is_the_pbxs_own_traffic_not_in_the_call_log_and_leaves_no_state(live: LiveWorld) -> None:
    decision = await live.route(live.request("c1", "1001", dialled="1002", trusted=False, authenticated_user="1001"))
    live.answer_and_hang_up("c1", live.bruno, decision)
    await live.settle()
    assert await live.rows("SELECT id FROM calls") == []
    assert live.journal._routing == {} and live.journal._calls == {}


async def test_an_admin_change_is_in_the_routing_directory_when_the_api_answers(live: LiveWorld) -> None:
    async with live.sessionmaker() as session:
        from sqlalchemy import text
        await session.execute(text("UPDATE employees SET extension = '1009' WHERE id = :id"), {"id": live.bruno})
        await session.commit()
    assert live.directory.employee_for_extension("1009") is None  # the snapshot of before
    await live.directory.reload_now("employees")
    assert live.directory.employee_for_extension("1009") == live.bruno


async def test_a_reload_that_cannot_read_the_database_keeps_the_old_tables_and_retries_later(
    live: LiveWorld,
) -> None:
    from gateway.storage.session import make_engine, make_sessionmaker

    down = make_engine("sqlite+aiosqlite:////nonexistent-dir/gateway.db")
    before = live.directory.snapshot
    live.directory.sessionmaker = make_sessionmaker(down)
    try:
        await live.directory.reload_now("numbers")
        assert live.directory.snapshot is before and live.directory._wake.is_set()
    finally:
        await down.dispose()


async def test_c1_the_routers_one_query_decision_equals_the_full_read_of_the_number(live: LiveWorld) -> None:
    """The directory's number facts must give the engine exactly what reading the number would."""
    from gateway.crm_bridge import call_hooks

    first = await live.route(live.request("c1", NEW))
    live.answer_and_hang_up("c1", live.alice, first)
    await live.settle()
    number = next(iter(live.directory.snapshot.numbers.values()))
    facts = live.directory.snapshot.facts[number.id]
    for caller in (NEW, "0699887766", "anonymous"):  # known now, new, unusable (R6)
        async with live.sessionmaker() as session:
            full = await call_hooks.decide_call(session, key="call:k", number=number.e164, party_raw=caller,
                                                direction="inbound")
            quick = await call_hooks.decide_call(session, key="call:k", number=number.e164, party_raw=caller,
                                                 direction="inbound", facts=facts)
        assert quick.plan == full.plan and quick.interaction == full.interaction


async def test_r7_an_answer_is_logged_while_the_call_is_up_and_one_written_with_the_end_when_it_was_over(
    live: LiveWorld,
) -> None:
    """The answer of a call still up is in the call log before the call ends; a call that is over before
    its answer is written gets its answer and its end in one transaction: the log reads the same."""
    from gateway.b2bua.events import CallAnswered, CallEnded, LegOffered

    decision = await live.route(live.request("up", NEW))
    target = next(t for t in decision.targets if t.employee_id == live.bruno)
    live.journal.leg_offered(LegOffered("up", target, 0.0))
    live.journal.call_answered(CallAnswered("up", 0.0, 1.0, target))
    await live.settle()
    [ringing] = await live.rows("SELECT outcome, answered_by_id, offered_ids, ended_at FROM calls")
    assert (ringing.outcome, ringing.answered_by_id, ringing.ended_at) == ("answered", live.bruno, None)
    assert _ids(ringing.offered_ids) == [live.bruno]
    live.journal.call_ended(CallEnded("up", 4.0, "caller", 3.0))
    second = await live.route(live.request("over", "0611223355"))
    live.answer_and_hang_up("over", live.bruno, second)
    await live.settle()
    rows = await live.rows("SELECT call_id, outcome, answered_by_id, offered_ids, answered_at IS NOT NULL AS answered,"
                           " ended_at IS NOT NULL AS ended FROM calls ORDER BY call_id")
    assert [(r.call_id, r.outcome, r.answered_by_id, _ids(r.offered_ids), bool(r.answered), bool(r.ended))
            for r in rows] == [("over", "answered", live.bruno, [live.bruno], True, True),
                               ("up", "answered", live.bruno, [live.bruno], True, True)]
    assert live.journal._answers_with_end == {}


async def test_an_answer_held_for_an_end_that_fails_as_a_bug_is_not_kept_in_memory(
    live: LiveWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.storage import call_log

    async def broken_end(*_args: Any, **_kwargs: Any) -> bool:
        raise RuntimeError("a bug in the end's write")

    monkeypatch.setattr(call_log, "end_first", broken_end)
    decision = await live.route(live.request("bug", NEW))
    live.answer_and_hang_up("bug", live.bruno, decision)  # over before its answer is written: the answer is held
    await live.settle()
    assert live.journal.work.failures == 1
    assert live.journal._answers_with_end == {}


def _ids(column: Any) -> Any:
    """A JSON column as SQLite (text) and PostgreSQL (decoded) give it back."""
    return json.loads(column) if isinstance(column, str) else column
