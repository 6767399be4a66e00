"""A transferred call in the journal (SPEC R5, T11), in process on a real database: one call-log entry with
the transfer chain and who talked for how long, one CRM activity ended once, and the lead the call created
following the transfer when the number says so (the linking engine's decision)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from gateway.b2bua.events import CallAnswered, CallEnded, CallTransferred, LegOffered
from gateway.storage.models import Number
from tests.calls.conftest import LiveWorld

NEW = "0611229900"


async def _transferred_call(live: LiveWorld, call_id: str, caller: str) -> None:
    decision = await live.route(live.request(call_id, caller))
    alice = next(t for t in decision.targets if t.employee_id == live.alice)
    live.journal.leg_offered(LegOffered(call_id, alice, 0.0))
    live.journal.call_answered(CallAnswered(call_id, 1.0, 1.0, alice))
    live.journal.call_transferred(CallTransferred(call_id, live.alice, live.bruno, 3.0))
    live.journal.call_ended(CallEnded(call_id, 6.0, "caller", 7.0))
    await live.settle()


@pytest.mark.parametrize("option", [True, False], ids=["option-on", "option-off"])
async def test_r5_t11_a_transferred_call_is_one_entry_one_activity_and_its_lead_follows_with_the_option(
    live: LiveWorld, option: bool,
) -> None:
    async with live.sessionmaker() as session:
        await session.execute(sa.update(Number).values(change_responsible_on_transfer=option))
        await session.commit()
    await live.directory.reload()
    await _transferred_call(live, "t1", NEW)
    [call] = await live.rows("SELECT answered_by_id, outcome, routing FROM calls")
    routing = call.routing if isinstance(call.routing, dict) else json.loads(call.routing)
    assert (call.answered_by_id, call.outcome) == (live.alice, "answered")
    assert [(t["kind"], t["from_employee_id"], t["to_employee_id"]) for t in routing["transfers"]] == [
        ("blind", live.alice, live.bruno)]
    assert routing["legs"] == [{"employee_id": live.alice, "seconds": 2.0}, {"employee_id": live.bruno, "seconds": 4.0}]
    [activity] = await live.rows("SELECT completed_at, details FROM activities WHERE interaction_key = 'call:t1'")
    details = activity.details if isinstance(activity.details, dict) else json.loads(activity.details)
    assert activity.completed_at is not None and [leg["employee_id"] for leg in details["legs"]] == [
        live.alice, live.bruno]
    [ended] = await live.rows("SELECT count(*) AS n FROM outbox_entries WHERE kind = 'call_ended'")
    assert ended.n == 1
    [lead] = await live.rows("SELECT responsible_id FROM leads")
    assert lead.responsible_id == (live.bruno if option else live.alice)


async def test_t11_a_known_clients_lead_never_changes_on_transfer(live: LiveWorld) -> None:
    async with live.sessionmaker() as session:
        await session.execute(sa.update(Number).values(change_responsible_on_transfer=True))
        await session.commit()
    await live.directory.reload()
    first = await live.route(live.request("k1", NEW))
    live.answer_and_hang_up("k1", live.alice, first)
    await live.settle()
    await _transferred_call(live, "k2", NEW)  # the same caller again: known now, the call attaches
    [lead] = await live.rows("SELECT responsible_id FROM leads")
    assert lead.responsible_id == live.alice
    [crm] = await live.rows("SELECT crm FROM calls WHERE call_id = 'k2'")
    assert (crm.crm if isinstance(crm.crm, dict) else json.loads(crm.crm))["action"] == "attach"
