"""What the call card says about a call (SPEC R8, T4b): the caller, the number called, and what the CRM
knows — read in the card hub's own task, never on the SIP path.

The CRM decision is the router's when it made one inside its routing budget (`RoutedCall.crm`); when it
did not (budget passed, database down) it is decided here again, read-only, as the journal would. Only
the card's details are read: the items' titles and responsibles, and the last activities on them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.calls.journal import RoutedCall
from gateway.crm_bridge import call_hooks
from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.linking import Action, ItemRef
from gateway.crm_bridge.store.items import MODELS, Item
from gateway.storage.models import Activity, ActivityBinding, Employee

#: How many of the known caller's past activities the card shows, newest first.
LAST_ACTIVITIES = 5


def caller_facts(routed: RoutedCall | None, caller_user: str | None, caller_uri: str) -> dict[str, Any]:
    """The caller as dialled and in E.164 (None when withheld or unusable, R6)."""
    if routed is not None:
        return {"as_dialled": routed.party_raw, "e164": routed.party_e164}
    return {"as_dialled": caller_user or caller_uri, "e164": None}


def number_facts(routed: RoutedCall | None, dialled: str | None) -> dict[str, Any]:
    """The number called: one of the gateway's numbers (its id and E.164), or what was dialled."""
    if routed is not None and routed.number_id is not None:
        return {"id": routed.number_id, "e164": routed.number, "dialled": dialled}
    return {"id": None, "e164": None, "dialled": dialled}


def no_crm(reason: str) -> dict[str, Any]:
    """The card's CRM part when nothing is known (an internal call, the database unavailable)."""
    return {"available": False, "reason": reason, "action": None, "rule_ids": [], "known": False,
            "items": [], "last_activities": [], "offer": None}


class DatabaseCardReader:
    """The card hub's `CardReader` over the database (its own session per call)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], backend: CrmBackend) -> None:
        self.sessionmaker = sessionmaker
        self.backend = backend

    async def __call__(self, routed: RoutedCall) -> dict[str, Any]:
        async with self.sessionmaker() as session:
            return await crm_facts(session, routed, self.backend)


async def crm_facts(session: AsyncSession, routed: RoutedCall, backend: CrmBackend) -> dict[str, Any]:
    """What the CRM knows of the caller of `routed` (a call to one of the numbers) and what it offers."""
    decided = routed.crm
    if not isinstance(decided, call_hooks.CallDecision):  # none yet (or only its plan): read the knowledge
        decided = await call_hooks.decide_call(
            session, key=call_hooks.call_key(routed.call_id), number=routed.number,
            party_raw=routed.crm_party, direction=routed.direction, backend=backend,
        )
    plan, knowledge = decided.plan, decided.interaction.knowledge
    refs = [known.ref for known in knowledge.items]
    return {
        "available": True,
        "reason": None,
        "action": plan.action.value,
        "rule_ids": list(plan.rule_ids),
        "known": bool(refs),
        "employee": knowledge.is_employee,  # T9: the caller is one of ours
        "exception": knowledge.is_exception,  # T8
        "items": await _items(session, refs),
        "last_activities": await _last_activities(session, refs, plan.interaction_key),
        # T4b: nothing is created until the employee who took the call creates one from the card.
        "offer": {"create": list(call_hooks.CARD_ITEM_TYPES)} if plan.action == Action.OFFER_IN_CARD else None,
    }


async def _items(session: AsyncSession, refs: list[ItemRef]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for ref in refs:
        item: Item | None = await session.get(MODELS[ref.type], ref.id)
        if item is None:
            continue
        rows.append({
            "type": ref.type, "id": ref.id,
            "title": getattr(item, "title", None) or getattr(item, "name", ""),
            "status": getattr(item, "status", "active"),
            "responsible": await _employee(session, item.responsible_id),
        })
    return rows


async def _employee(session: AsyncSession, employee_id: int | None) -> dict[str, Any] | None:
    if employee_id is None:
        return None
    name = await session.scalar(sa.select(Employee.name).where(Employee.id == employee_id))
    return {"id": employee_id, "name": name}


async def _last_activities(session: AsyncSession, refs: list[ItemRef], this_call: str) -> list[dict[str, Any]]:
    if not refs:
        return []
    on_items = sa.or_(*(sa.and_(ActivityBinding.item_type == r.type, ActivityBinding.item_id == r.id) for r in refs))
    rows = await session.scalars(
        sa.select(Activity).where(
            Activity.id.in_(sa.select(ActivityBinding.activity_id).where(on_items)),
            sa.or_(Activity.interaction_key.is_(None), Activity.interaction_key != this_call),
        ).order_by(Activity.created_at.desc(), Activity.id.desc()).limit(LAST_ACTIVITIES)
    )
    return [{
        "id": a.id, "kind": a.kind, "direction": a.direction, "subject": a.subject,
        "created_at": a.created_at.isoformat(), "completed_at": a.completed_at.isoformat() if a.completed_at else None,
        "responsible_id": a.responsible_id,
    } for a in rows]
