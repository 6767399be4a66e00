"""The channel-independent half of linking an interaction (a call or an email) to the CRM (SPEC C1, C2).

Calls and mail differ only in how they gather their party and their channel settings; the rest is here:
the CRM-wide settings and the deactivated employees every Interaction needs, the interaction key, and
:func:`decide_and_record`, which runs the linking engine once per key, stores the Decision and queues
the writes in the caller's transaction.

`gateway.crm_bridge.call_hooks` (calls) and `mail_bridge.linking` (mail) both build on it. A call's
plan may have been decided already by the router inside its routing budget, so `call_hooks.plan_call`
stores that decision with :func:`store_decision` rather than deciding again through
:func:`decide_and_record`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge import outbox
from gateway.crm_bridge.linking import (
    Action,
    Channel,
    CrmModeSettings,
    Interaction,
    LinkPlan,
    decide,
    explain,
)
from gateway.crm_bridge.service import PlanContext
from gateway.storage.models import CRM_SETTINGS_ID, CrmSettings, Decision, Employee

#: The longest interaction key the decisions and outbox_entries columns hold.
MAX_KEY_LENGTH = 255


class SaveRefused(ValueError):
    """A manual save (M3) the rules forbid (M4, T8); the message is the plan's explanation."""

    def __init__(self, plan: LinkPlan) -> None:
        super().__init__(f"error saving the email to the CRM: {explain(plan)}")
        self.plan = plan


def interaction_key(channel: Channel | str, raw_id: str) -> str:
    """The interaction key of a call (SIP Call-ID) or an email (Message-ID): SPEC C2's idempotency key.

    An id too long for the key columns is keyed by its SHA-256 instead (still one key per id).
    """
    channel = Channel(channel)
    if not raw_id or not raw_id.strip():
        raise ValueError(f"a {channel.value} needs its id (Call-ID / Message-ID) to be linked to the CRM")
    key = f"{channel.value}:{raw_id.strip()}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(raw_id.strip().encode("utf-8", "surrogatepass")).hexdigest()
    return f"{channel.value}:sha256:{digest}"


async def inactive_employees(session: AsyncSession, employee_ids: Iterable[int | None]) -> frozenset[int]:
    """Which of `employee_ids` are deactivated (T10: never made responsible); one query, none when empty.

    An id with no employee row counts as inactive too: nobody can take a call or own an item for it.
    """
    wanted = {employee_id for employee_id in employee_ids if employee_id is not None}
    if not wanted:
        return frozenset()
    active = await session.scalars(
        sa.select(Employee.id).where(Employee.id.in_(wanted), Employee.active.is_(True))
    )
    return frozenset(wanted - set(active.all()))


async def crm_mode_settings(session: AsyncSession) -> CrmModeSettings:
    """The CRM-wide settings (T3, T12, M11); defaults when the seeded row is missing."""
    row = await session.get(CrmSettings, CRM_SETTINGS_ID)
    if row is None:
        return CrmModeSettings()
    return CrmModeSettings(
        mode=row.mode,
        deal_pipeline_id=row.deal_pipeline_id,
        deal_creation_mode=row.deal_creation_mode,
        repeat_sales=row.repeat_sales,
        legacy_lead_mode=row.legacy_lead_mode,
    )


async def stored_plan(session: AsyncSession, key: str) -> LinkPlan | None:
    """The plan stored for an interaction (``GET /decisions/{interaction}``), or None."""
    stored = await session.get(Decision, key)
    return LinkPlan.from_dict(stored.plan) if stored is not None else None


async def store_decision(
    session: AsyncSession, key: str, channel: Channel | str, plan: LinkPlan, now: datetime
) -> bool:
    """Store the Decision unless one exists for ``key``; True when this call stored it.

    ON CONFLICT DO NOTHING rather than a failing INSERT: on PostgreSQL a concurrent insert of the same key
    waits for the other transaction and then does nothing, so both callers end with the same plan.
    """
    values = {"interaction_key": key, "channel": Channel(channel).value, "plan": plan.to_dict(), "created_at": now}
    result = await session.execute(_store_statement(session.get_bind().dialect.name), values)
    return bool(result.rowcount)  # type: ignore[attr-defined]


_STORES: dict[str, Any] = {}


def _store_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING of a decision, built once per dialect: on the call path, building
    a statement costs more than running it."""
    statement = _STORES.get(dialect)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = cast(sa.Table, Decision.__table__)
        statement = _STORES[dialect] = insert(table).values(
            {name: sa.bindparam(name, type_=table.c[name].type)
             for name in ("interaction_key", "channel", "plan", "created_at")}
        ).on_conflict_do_nothing(index_elements=["interaction_key"])
    return statement


async def replace_decision(session: AsyncSession, key: str, plan: LinkPlan) -> None:
    """Overwrite the stored plan of ``key`` (a manual save decides again what was only recorded)."""
    stored = await session.get(Decision, key)
    if stored is None:
        raise LookupError(f"no decision stored for {key!r}")
    stored.plan = plan.to_dict()


def writes_anything(plan: LinkPlan) -> bool:
    """True when carrying out the plan writes to the CRM (an item or an activity)."""
    return bool(plan.create or plan.record_activity)


async def decide_and_record(
    session: AsyncSession, interaction: Interaction, context: PlanContext, *, now: datetime | None = None
) -> LinkPlan:
    """Decide an interaction once per key, store the Decision and queue the writes; the caller commits.

    A second call for the same key (a retransmission, a second copy of a mail, a restart) returns the
    stored plan and queues nothing (SPEC C2). A manual save (M3) of something already recorded without
    CRM writes decides again and, when the new plan writes, replaces the stored one; a refused manual
    save raises :class:`SaveRefused` and writes nothing.
    """
    now = now or datetime.now(UTC)
    stored = await stored_plan(session, interaction.key)
    if stored is not None and not (interaction.manual_save and not writes_anything(stored)):
        return stored
    plan = decide(interaction)
    if plan.action == Action.REFUSED:
        raise SaveRefused(plan)
    if stored is not None:
        await replace_decision(session, interaction.key, plan)
    elif not await store_decision(session, interaction.key, interaction.channel, plan, now):
        # Another task or node decided this key meanwhile: theirs stands.
        winner = await stored_plan(session, interaction.key)
        assert winner is not None
        return winner
    if writes_anything(plan):
        await outbox.apply_plan(session, plan, context, now=now)
    return plan
