"""Notes from the call card (SPEC R8): queued onto the call's CRM activity behind the call's other writes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge import outbox
from gateway.crm_bridge.call_hooks import call_key, card_item_types
from gateway.crm_bridge.interactions import stored_plan
from gateway.crm_bridge.linking import Action
from gateway.crm_bridge.service import CALL_NOTE


class NoCallActivity(ValueError):
    """The call has no CRM activity a note could be attached to."""


async def note_call(
    session: AsyncSession, *, call_id: str, employee_id: int, text: str, now: datetime | None = None
) -> None:
    """Queue a note from the call card onto the call's activity, behind the call's other writes (so a note
    written while the activity is still queued lands on it). The caller commits."""
    key = call_key(call_id)
    plan = await stored_plan(session, key)
    if plan is None:
        raise LookupError(f"no decision stored for call {call_id!r} yet: try again in a moment")
    records = plan.record_activity and bool(plan.create or plan.attach_to)
    if not records and not await card_item_types(session, call_id):
        hint = (" create a lead or a contact from the card first (T4b)" if plan.action == Action.OFFER_IN_CARD
                else f" the CRM records nothing of it ({', '.join(plan.rule_ids)})")
        raise NoCallActivity(f"call {call_id!r} has no CRM activity to note on:{hint}")
    now = now or datetime.now(UTC)
    await outbox.enqueue(session, key, CALL_NOTE,
                         {"text": text, "employee_id": employee_id, "at": now.isoformat()}, now=now)
