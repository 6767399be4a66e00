"""Many plans and call ends carried out at once (the outbox's batches) leave the CRM exactly as carrying
them out one at a time does (SPEC C2: once per interaction), on SQLite and PostgreSQL.

Each case is run twice on one database: one plan per transaction under the keys ``one:…``, then all the
plans in one :func:`carry_out_plans` under ``many:…``; what each left (items, phones, links, activity,
bindings, timeline, idempotency keys) is read back and compared with its twin's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.linking import Action, ItemRef, LinkPlan
from gateway.crm_bridge.rights import SYSTEM
from gateway.crm_bridge.service import (
    PlanContext,
    carry_out_call_end,
    carry_out_call_ends,
    carry_out_plan,
    carry_out_plans,
)
from gateway.crm_bridge.store import BuiltinCrm
from gateway.crm_bridge.store.items import create_contact
from tests.crm_bridge.conftest import Db, World

AT = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
CRM = BuiltinCrm()


def _cases(world: World, client: int) -> list[tuple[str, LinkPlan, PlanContext]]:
    call = PlanContext(channel="call", direction="inbound", party_phone="+33612345678", default_region="FR",
                       occurred_at=AT, details={"number": world.number})
    mail = PlanContext(channel="email", direction="inbound", party_email="Ann@Example.org", party_name="Ann",
                       occurred_at=AT, details={"timeline_employee_id": world.boris})
    return [
        ("lead", LinkPlan("lead", Action.CREATE_LEAD, create=("lead",), responsible_id=world.anna,
                          source_id=world.source, record_activity=True, rule_ids=("T4a",)), call),
        ("deal", LinkPlan("deal", Action.CREATE_DEAL, create=("deal", "contact", "company"),
                          responsible_id=world.boris, pipeline_id=world.sales_pipeline, record_activity=True,
                          rule_ids=("T12",)), call),
        ("mail", LinkPlan("mail", Action.CREATE_LEAD, create=("lead",), responsible_id=world.chloe,
                          record_activity=True, rule_ids=("M11",)), mail),
        ("attach", LinkPlan("attach", Action.ATTACH, attach_to=(ItemRef("contact", client),),
                            responsible_id=world.anna, record_activity=True, rule_ids=("T7",)), call),
        ("quiet", LinkPlan("quiet", Action.CREATE_LEAD, create=("lead",), responsible_id=world.anna,
                           rule_ids=("T4a",)), call),
    ]


def _keyed(prefix: str, case: tuple[str, LinkPlan, PlanContext]) -> tuple[LinkPlan, PlanContext]:
    name, plan, ctx = case
    return replace(plan, interaction_key=f"{prefix}:{name}"), ctx


async def _left_by(db: Db, key: str) -> dict[str, Any]:
    """What one interaction left in the CRM, without ids and keys (those differ between the twins)."""
    async with db.sessions() as session:
        def q(sql: str, **params: Any) -> Any:
            return session.execute(sa.text(sql), {"key": key, **params})

        items: dict[str, Any] = {}
        for table, kind, label in (("leads", "lead", "title"), ("contacts", "contact", "name"),
                                   ("companies", "company", "name"), ("deals", "deal", "title")):
            for row in (await q(f"SELECT * FROM {table} WHERE interaction_key = :key")).mappings():
                phones = (await q("SELECT value, normalized FROM item_phones WHERE item_type = :t AND item_id = :i",
                                  t=kind, i=row["id"])).all()
                emails = (await q("SELECT value, normalized FROM item_emails WHERE item_type = :t AND item_id = :i",
                                  t=kind, i=row["id"])).all()
                timeline = (await q("SELECT kind, text, employee_id FROM timeline_entries "
                                    "WHERE item_type = :t AND item_id = :i", t=kind, i=row["id"])).all()
                items[kind] = {
                    "label": row[label], "responsible": row["responsible_id"], "source": row["source_id"],
                    "status": row.get("status"), "pipeline": row.get("pipeline_id"),
                    "has_contact": row.get("contact_id") is not None, "has_company": row.get("company_id") is not None,
                    "phones": sorted(map(tuple, phones)), "emails": sorted(map(tuple, emails)),
                    "timeline": sorted(map(tuple, timeline)),
                }
        activities = []
        for row in (await q("SELECT * FROM activities WHERE interaction_key = :key")).mappings():
            bindings = (await q("SELECT item_type FROM activity_bindings WHERE activity_id = :a", a=row["id"])).all()
            details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
            activities.append({"kind": row["kind"], "direction": row["direction"], "subject": row["subject"],
                               "responsible": row["responsible_id"], "completed": row["completed_at"] is not None,
                               "details": details, "bound": sorted(t for (t,) in bindings)})
        used = sorted(k.split(":", 2)[2] for (k,) in (await q(
            "SELECT key FROM idempotency_keys WHERE key LIKE :like", like=f"{key}:%")).all())
    return {"items": items, "activities": activities, "keys": used}


async def test_c2_plans_carried_out_together_leave_what_each_leaves_alone(db: Db, world: World) -> None:
    async with db.sessions() as session, session.begin():
        client = (await create_contact(session, name="Known client", new=NewItem(phones=("+33155555555",)),
                                       company_id=None, actor=SYSTEM)).id
    cases = _cases(world, client)
    for case in cases:
        async with db.sessions() as session, session.begin():
            alone = await carry_out_plan(session, CRM, *_keyed("one", case))
        assert (alone.activity_id is not None) == case[1].record_activity
    batch = [_keyed("many", case) for case in cases]
    async with db.sessions() as session, session.begin():
        # The first plan twice (a retransmission within one batch): the second reuses the first's writes.
        outcomes = await carry_out_plans(session, CRM, [*batch, batch[0]])

    assert outcomes[-1] == outcomes[0]
    assert [len(outcome.created) for outcome in outcomes[:-1]] == [len(plan.create) for _, plan, _ in cases]
    for name, plan, _ in cases:
        one, many = await _left_by(db, f"one:{name}"), await _left_by(db, f"many:{name}")
        assert many == one, name
        assert sorted(many["items"]) == sorted(plan.create)
    deal = (await _left_by(db, "many:deal"))["items"]
    assert deal["deal"]["has_contact"] and deal["deal"]["has_company"]
    assert await db.count("leads", "interaction_key = 'many:lead'") == 1


async def test_c2_call_ends_carried_out_together_complete_what_each_completes_alone(db: Db, world: World) -> None:
    async with db.sessions() as session, session.begin():
        client = (await create_contact(session, name="Known client", new=NewItem(), company_id=None,
                                       actor=SYSTEM)).id
    cases = _cases(world, client)
    ends = {
        "lead": {"ended_at": AT.isoformat(), "answered_by": world.anna, "duration_s": 42.0},
        "deal": {"ended_at": AT.isoformat(), "answered_by": None, "duration_s": 0.0},
        "attach": {"ended_at": AT.isoformat(), "answered_by": world.anna, "duration_s": 7.5,
                   "legs": [{"employee_id": world.anna, "seconds": 7.5}]},
        "quiet": {"ended_at": AT.isoformat(), "answered_by": world.anna, "duration_s": 3.0},  # no activity
    }
    for prefix in ("one", "many"):
        async with db.sessions() as session, session.begin():
            await carry_out_plans(session, CRM, [_keyed(prefix, case) for case in cases])
    alone = []
    for name, outcome in ends.items():
        async with db.sessions() as session, session.begin():
            alone.append(await carry_out_call_end(session, CRM, f"one:{name}", outcome))
    async with db.sessions() as session, session.begin():
        together = await carry_out_call_ends(session, CRM, [(f"many:{name}", outcome) for name, outcome in ends.items()])

    assert [a is None for a in alone] == [t is None for t in together] == [False, False, False, True]
    for name in ends:
        one, many = await _left_by(db, f"one:{name}"), await _left_by(db, f"many:{name}")
        assert many == one, name
    [answered] = (await _left_by(db, "many:lead"))["activities"]
    assert answered["completed"] and answered["details"]["outcome"] == "answered"
    [missed] = (await _left_by(db, "many:deal"))["activities"]
    assert not missed["completed"] and missed["details"]["outcome"] == "missed"
