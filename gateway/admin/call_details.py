"""What `GET /calls/{id}` adds to a call-log row: the CRM items the call created or attached, read from
the CRM tables by the call's interaction key, and its routing and CRM rule ids as sentences."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.schemas.calls import CallItemOut
from gateway.crm_bridge.linking import LinkPlan, explain_lines
from gateway.storage.models import Activity, ActivityBinding, Call, Decision, IdempotencyKey, ItemType

# SPEC rules routing names in its decisions; a rule id "R2.evenly" is R2's sentence plus its variant.
ROUTING_RULES: dict[str, str] = {
    "R1": "the call to one of the numbers rang, in order, the known caller's responsible then the queue group",
    "R2": "the number's queue group rang its members",
    "R3": "busy or unregistered members were skipped; nobody answered, so the no-answer chain applied",
    "R6": "the caller has no usable number (anonymous, withheld or unparseable)",
    "T7": "the caller is known: their responsible rang first",
    "T8": "the caller is on the exception list: logged, nothing recorded in the CRM",
    "T9": "the caller is an employee: nothing recorded in the CRM",
    "static": "a static route of the configuration applied",
}


def _routing_sentence(rule_id: str) -> str:
    base, _, variant = rule_id.partition(".")
    sentence = ROUTING_RULES.get(rule_id) or ROUTING_RULES.get(base) or "applied"
    return f"{rule_id}: {sentence}" + (f" ({variant})" if variant and rule_id not in ROUTING_RULES else "")


def routing_lines(routing: dict[str, Any]) -> list[str]:
    """The routing decision's rule ids as sentences, its notes, then its own explanation if stored."""
    lines = [_routing_sentence(str(rule_id)) for rule_id in routing.get("rule_ids") or ()]
    lines += [f"note: {note}" for note in routing.get("notes") or ()]
    stored = routing.get("explanation")
    if isinstance(stored, str) and stored:
        lines.append(f"routing: {stored}")
    elif isinstance(stored, list):
        lines += [f"routing: {line}" for line in stored]
    return lines


async def crm_lines(session: AsyncSession, call: Call) -> list[str]:
    """The CRM decision explained by the linking engine's own sentences when its plan is stored, else
    the rule ids and notes the call log holds."""
    decision = await session.get(Decision, call.interaction_key)
    if decision is not None:
        return explain_lines(LinkPlan.from_dict(decision.plan))
    if not call.crm:
        return []
    lines = [f"{rule_id}: decided (no stored plan)" for rule_id in call.crm.get("rule_ids") or ()]
    return lines + [f"note: {note}" for note in call.crm.get("notes") or ()]


async def call_items(session: AsyncSession, key: str) -> list[CallItemOut]:
    """Items created by the call (its idempotency keys "<key>:create_<type>") first, then the items its
    activities are bound to that it did not create."""
    created_keys = [f"{key}:create_{item_type.value}" for item_type in ItemType]
    results = await session.scalars(select(IdempotencyKey.result).where(IdempotencyKey.key.in_(created_keys)))
    created = sorted({(r["type"], int(r["id"])) for r in results if r and "type" in r and "id" in r})
    bound = await session.execute(
        select(ActivityBinding.item_type, ActivityBinding.item_id)
        .join(Activity, Activity.id == ActivityBinding.activity_id).where(Activity.interaction_key == key))
    attached = sorted({(t, i) for t, i in bound} - set(created))
    return ([CallItemOut(type=t, id=i, how="created") for t, i in created]
            + [CallItemOut(type=t, id=i, how="attached") for t, i in attached])
