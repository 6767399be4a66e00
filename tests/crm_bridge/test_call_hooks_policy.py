"""The call hooks feed the engine what the database knows about employees (T10, T7) and every simulated
plan's explanation comes from its rule ids (C1, T11) — on real migrated databases."""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.call_hooks import decide_call, plan_call, simulate_call
from gateway.crm_bridge.linking import Action, ItemRef, explain_lines
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Employee
from tests.crm_bridge.conftest import Db, World, update_crm, update_number
from tests.crm_bridge.test_linking_model import rules_named

NEW_CALLER = "01 44 55 66 77"
CLIENT_PHONE = "01 45 00 00 01"


async def set_active(db: Db, employee_id: int, active: bool) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(sa.update(Employee).where(Employee.id == employee_id).values(active=active))


async def add_client(db: Db, world: World, responsible_id: int) -> ItemRef:
    """A contact with CLIENT_PHONE whose responsible is `responsible_id`."""
    async with db.sessions() as session, session.begin():
        new = NewItem(responsible_id=responsible_id, phones=(CLIENT_PHONE,), default_region=world.region)
        return await BuiltinCrm().create_contact(session, name="Client", new=new)


async def test_t10_a_deactivated_first_queue_member_is_never_made_responsible(db: Db, world: World) -> None:
    await set_active(db, world.anna, False)
    async with db.sessions() as session:
        simulated = await simulate_call(session, world.number, NEW_CALLER)
    assert (simulated.action, simulated.responsible_id) == (Action.CREATE_LEAD, world.boris)
    async with db.sessions() as session, session.begin():
        real = await plan_call(session, call_id="d6@pbx", number=world.number, party_raw=NEW_CALLER,
                               direction="inbound")
    assert real.responsible_id == world.boris

    await set_active(db, world.anna, True)
    async with db.sessions() as session:
        assert (await simulate_call(session, world.number, NEW_CALLER)).responsible_id == world.anna


async def test_t10_the_engine_is_told_who_is_inactive(sqlite_db: Db, sqlite_world: World) -> None:
    await set_active(sqlite_db, sqlite_world.boris, False)
    await set_active(sqlite_db, sqlite_world.chloe, False)  # not in the queue, no item: not asked about
    async with sqlite_db.sessions() as session:
        decided = await decide_call(session, key="call:x", number=sqlite_world.number, party_raw=NEW_CALLER,
                                    direction="inbound")
    assert decided.interaction.settings.queue_member_ids == (sqlite_world.anna, sqlite_world.boris)
    assert decided.interaction.inactive_employee_ids == frozenset({sqlite_world.boris})


async def test_t7_a_known_client_of_a_deactivated_employee_goes_to_the_queue_group(
    sqlite_db: Db, sqlite_world: World
) -> None:
    contact = await add_client(sqlite_db, sqlite_world, sqlite_world.chloe)
    async with sqlite_db.sessions() as session:
        active_owner = await simulate_call(session, sqlite_world.number, CLIENT_PHONE)
    assert (active_owner.action, active_owner.responsible_id) == (Action.ATTACH, sqlite_world.chloe)

    await set_active(sqlite_db, sqlite_world.chloe, False)
    async with sqlite_db.sessions() as session:
        plan = await simulate_call(session, sqlite_world.number, CLIENT_PHONE)
    assert (plan.action, plan.attach_to) == (Action.ATTACH, (contact,))
    assert plan.responsible_id == sqlite_world.anna
    assert plan.rule_ids == ("T7", "T10")


async def test_t10_a_deactivated_agent_does_not_get_the_lead_of_their_outbound_call(
    sqlite_db: Db, sqlite_world: World
) -> None:
    await set_active(sqlite_db, sqlite_world.chloe, False)
    async with sqlite_db.sessions() as session:
        plan = await simulate_call(session, sqlite_world.number, NEW_CALLER, "outbound",
                                   agent_id=sqlite_world.chloe)
    assert plan.responsible_id == sqlite_world.anna


async def test_c1_t11_every_simulated_explanation_names_only_the_plans_rule_ids(
    sqlite_db: Db, sqlite_world: World
) -> None:
    """Number options x CRM modes x parties x directions, with and without a deactivated employee."""
    await add_client(sqlite_db, sqlite_world, sqlite_world.anna)
    parties = (NEW_CALLER, CLIENT_PHONE, "06 11 22 33 44", "+33199000001")
    seen: set[str] = set()
    for card, transfer, mode, repeat, inactive in itertools.product(
        (False, True), (False, True), ("classic", "simple"), (False, True), (False, True)
    ):
        await update_number(sqlite_db, unknown_caller_action="offer_in_card" if card else "auto_lead",
                            change_responsible_on_transfer=transfer, route_known_to_responsible=True,
                            create_for="all")
        await update_crm(sqlite_db, mode=mode, repeat_sales=repeat, legacy_lead_mode=not repeat)
        await set_active(sqlite_db, sqlite_world.anna, not inactive)
        for party, direction in itertools.product(parties, ("inbound", "outbound")):
            async with sqlite_db.sessions() as session:
                plan = await simulate_call(session, sqlite_world.number, party, direction)
            lines = explain_lines(plan)
            assert rules_named(lines) <= set(plan.rule_ids), (plan, lines)
            assert plan.transfer_moves_responsible == ("T11" in plan.rule_ids)
            assert plan.responsible_id != sqlite_world.anna or not inactive
            seen.update(plan.rule_ids)
    assert {"T4a", "T4b", "T7", "T8", "T9", "T10", "T11", "T12", "M11"} <= seen
