"""Calls → CRM: build the Interaction from database state, decide, store the Decision, queue the writes.

:func:`plan_call` is what the B2BUA's observer calls when a call starts; :func:`simulate_call` is the dry
run behind ``gateway simulate call`` and ``POST /simulate/call``. Both go through :func:`decide_call`, so
a simulation answers exactly what a real call would get — it only skips the two writes (the Decision
row and the outbox entry). The call itself never waits on a CRM write: :func:`plan_call` only reads and
enqueues; the :class:`~gateway.crm_bridge.outbox.OutboxWorker` writes later (C4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge import outbox
from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.identity import normalize_phone
from gateway.crm_bridge.interactions import (
    crm_mode_settings,
    inactive_employees,
    interaction_key,
    store_decision,
    stored_plan,
)
from gateway.crm_bridge.linking import (
    Action,
    Channel,
    ChannelSettings,
    CrmModeSettings,
    Direction,
    Interaction,
    LinkPlan,
    PartyKnowledge,
    TransferDecision,
    decide,
    on_transfer,
)
from gateway.crm_bridge.rights import Access, Actor, require_right
from gateway.crm_bridge.service import CALL_ENDED, LINK_PLAN, TRANSFER, PlanContext, created_by
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import (
    Number,
    OutboxEntry,
    QueueMember,
)

#: The interaction key a simulation uses: never stored, so it cannot collide with a real call.
SIMULATION_KEY = "call:simulation"


class UnknownNumber(LookupError):
    """The called/calling number is not one of the gateway's numbers."""


class CardNotOffered(ValueError):
    """The call's decision did not offer creating an item from the call card (T4b)."""


@dataclass(frozen=True)
class CallDecision:
    """A decided call: the plan, the interaction it was decided on, and what the writes need."""

    plan: LinkPlan
    interaction: Interaction
    context: PlanContext


@dataclass(frozen=True)
class DecidedPlan:
    """A decision as `plan_call` stores it: the plan and what its writes need, without the knowledge it
    was made on (the router's decision as the writer process receives it)."""

    plan: LinkPlan
    context: PlanContext

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "context": self.context.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecidedPlan:
        return cls(LinkPlan.from_dict(data["plan"]), PlanContext.from_dict(data["context"]))


def call_key(call_id: str) -> str:
    """The interaction key of a call (SPEC C2: idempotency is per SIP Call-ID; RFC 3261 §25.1 bounds no
    Call-ID's length, so a long one is keyed by its SHA-256)."""
    return interaction_key(Channel.CALL, call_id)


async def find_number(session: AsyncSession, number: str) -> Number:
    """The gateway number written ``number`` (as the admin wrote it, or any form with the same E.164).

    One indexed query on ``numbers.e164`` for an international form; a national form is read in each
    region the numbers are in (a handful), still one query for all the candidate forms.
    """
    text = number.strip()
    candidates = {text}
    international = normalize_phone(text, "")
    if international is not None:
        candidates.add(international)
    else:
        regions = (await session.scalars(sa.select(Number.default_region).distinct())).all()
        candidates.update(form for region in regions if (form := normalize_phone(text, region)) is not None)
    found = await session.scalar(
        sa.select(Number).where(sa.or_(Number.e164.in_(candidates), Number.number == text)).order_by(Number.id)
    )
    if found is not None:
        return found
    raise UnknownNumber(f"{number!r} is not one of the gateway's numbers: add it under /numbers first")


async def channel_settings(session: AsyncSession, number: Number) -> ChannelSettings:
    """The number's CRM-integration settings (T4–T7, T10, T11) with its queue members in ring order."""
    members: tuple[int, ...] = ()
    if number.queue_group_id is not None:
        rows = await session.scalars(
            sa.select(QueueMember.employee_id)
            .where(QueueMember.group_id == number.queue_group_id)
            .order_by(QueueMember.position, QueueMember.employee_id)
        )
        members = tuple(rows.all())
    return ChannelSettings(
        create_items=True,
        unknown_caller_action=number.unknown_caller_action,
        create_for=number.create_for,
        source_id=number.source_id,
        queue_member_ids=members,
        route_known_to_responsible=number.route_known_to_responsible,
        change_responsible_on_transfer=number.change_responsible_on_transfer,
    )


@dataclass(frozen=True)
class NumberFacts:
    """What a call's decision reads about its number, read once and kept by the live router's routing
    directory so a call's lookup is the caller's CRM knowledge alone (one query)."""

    number: str  # as the admin wrote it
    default_region: str
    settings: ChannelSettings
    crm: CrmModeSettings
    active_employee_ids: frozenset[int]

    def inactive(self, employee_ids: Iterable[int | None]) -> frozenset[int]:
        """Which of `employee_ids` are not active employees (T10: never made responsible)."""
        return frozenset(e for e in employee_ids if e is not None and e not in self.active_employee_ids)


async def number_facts(
    session: AsyncSession, number: Number, crm: CrmModeSettings, active: frozenset[int]
) -> NumberFacts:
    """The facts of `number` for `decide_call(facts=...)`; `crm` and `active` are read once for all numbers."""
    return NumberFacts(number.number, number.default_region, await channel_settings(session, number), crm, active)


class PartyFinder(Protocol):
    """How a call's caller is looked up without a session (`store.lookup.InlinePartyLookup.find_party`)."""

    def __call__(self, *, phone: str | None) -> Awaitable[PartyKnowledge]: ...


async def decide_call(
    session: AsyncSession | None,
    *,
    key: str,
    number: str,
    party_raw: str,
    direction: Direction | str,
    agent_id: int | None = None,
    backend: CrmBackend | None = None,
    occurred_at: datetime | None = None,
    facts: NumberFacts | None = None,
    find_party: PartyFinder | None = None,
) -> CallDecision:
    """Read everything a call's decision needs and run the linking engine. Writes nothing.

    With `facts` (the number's settings as the routing directory holds them) only the caller's CRM
    knowledge is read; without, the number, its settings and the employees are read too. `find_party`
    looks the caller up instead of `backend` in `session`; with it and `facts`, `session` may be None.
    """
    direction = Direction(direction)
    if session is None and (facts is None or find_party is None):
        raise ValueError("decide_call without a session needs the number's facts and a find_party")
    if facts is None:
        assert session is not None
        found = await find_number(session, number)
        facts = NumberFacts(found.number, found.default_region, await channel_settings(session, found),
                            await crm_mode_settings(session), frozenset())
        inactive_of: Any = None
    else:
        inactive_of = facts.inactive
    party_phone = normalize_phone(party_raw, facts.default_region)
    if find_party is not None:
        knowledge = await find_party(phone=party_phone)
    else:
        assert session is not None
        knowledge = await (backend or BuiltinCrm()).find_party(session, phone=party_phone)
    settings = facts.settings
    candidates = {*settings.queue_member_ids, *(item.responsible_id for item in knowledge.items), agent_id}
    if inactive_of is not None:
        inactive = inactive_of(candidates)
    else:
        assert session is not None
        inactive = await inactive_employees(session, candidates)
    interaction = Interaction(
        key=key,
        channel=Channel.CALL,
        direction=direction,
        party_phone=party_phone,
        party_email=None,
        settings=settings,
        crm=facts.crm,
        knowledge=knowledge,
        agent_id=agent_id,
        inactive_employee_ids=inactive,
    )
    context = PlanContext(
        channel=Channel.CALL,
        direction=direction,
        party_phone=party_phone,
        party_name=None if party_phone else (party_raw.strip() or None),
        default_region=facts.default_region,
        occurred_at=occurred_at,
        details={"number": facts.number, "party": party_raw},
    )
    return CallDecision(plan=decide(interaction), interaction=interaction, context=context)


async def plan_call(
    session: AsyncSession,
    *,
    call_id: str,
    number: str,
    party_raw: str,
    direction: Direction | str,
    agent_id: int | None = None,
    backend: CrmBackend | None = None,
    now: datetime | None = None,
    decided: CallDecision | DecidedPlan | None = None,
    facts: NumberFacts | None = None,
) -> LinkPlan:
    """Decide a call, store the Decision and enqueue the writes, in the caller's transaction.

    `decided`: the decision the router already made for this call (inside its routing budget), stored
    as it is so the call rings and is recorded by one decision; None decides here. A second call for the
    same Call-ID (a retransmitted INVITE, a restart) returns the stored plan and enqueues nothing
    (SPEC C2). `facts`: the number's settings as the routing directory holds them (see `decide_call`).
    The caller commits.
    """
    key = call_key(call_id)
    now = now or datetime.now(UTC)
    if decided is None or decided.plan.interaction_key != key:
        # Read before deciding: a retransmission's call needs no second decision. A call the router
        # decided goes straight to the insert below, which finds a stored decision just as well.
        stored = await stored_plan(session, key)
        if stored is not None:
            return stored
        decided = await decide_call(
            session,
            key=key,
            number=number,
            party_raw=party_raw,
            direction=direction,
            agent_id=agent_id,
            backend=backend,
            occurred_at=now,
            facts=facts,
        )
    elif decided.context.occurred_at is None:
        decided = replace(decided, context=replace(decided.context, occurred_at=now))
    if not await store_decision(session, key, Channel.CALL, decided.plan, now):
        # Another task or node decided this Call-ID meanwhile (a retransmission raced us): theirs stands.
        winner = await stored_plan(session, key)
        assert winner is not None
        return winner
    if decided.plan.create or decided.plan.record_activity:
        await outbox.apply_plan(session, decided.plan, decided.context, now=now)
    return decided.plan


async def _card_item_types(session: AsyncSession, key: str) -> set[str]:
    """The item types created (or queued to be) from this call's card (T4b)."""
    made = {t for t in CARD_ITEM_TYPES if await created_by(session, key, t) is not None}
    queued = await session.scalars(
        sa.select(OutboxEntry.payload).where(
            OutboxEntry.interaction_key == key, OutboxEntry.kind == LINK_PLAN
        )
    )
    for payload in queued:
        made.update(t for t in (payload.get("plan") or {}).get("create", ()) if t in CARD_ITEM_TYPES)
    return made


async def card_item_types(session: AsyncSession, call_id: str) -> set[str]:
    """What the card of call `call_id` created (or queued): T4b allows one item per call."""
    return await _card_item_types(session, call_key(call_id))


async def _lead_from_card(session: AsyncSession, key: str) -> bool:
    """True when a lead was created (or is queued to be) from this call's card (T4b)."""
    return "lead" in await _card_item_types(session, key)


async def _call_end_queued(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """The payload of the call's last queued end (see :func:`finish_call`), if the call has ended."""
    return await session.scalar(
        sa.select(OutboxEntry.payload)
        .where(OutboxEntry.interaction_key == key, OutboxEntry.kind == CALL_ENDED)
        .order_by(OutboxEntry.seq.desc())
        .limit(1)
    )


async def simulate_call(
    session: AsyncSession,
    number: str,
    party_raw: str,
    direction: Direction | str = Direction.INBOUND,
    *,
    agent_id: int | None = None,
    backend: CrmBackend | None = None,
) -> LinkPlan:
    """The plan a call would get now, WITHOUT writing anything (dry run, SPEC C1)."""
    decided = await decide_call(
        session,
        key=SIMULATION_KEY,
        number=number,
        party_raw=party_raw,
        direction=direction,
        agent_id=agent_id,
        backend=backend,
    )
    return decided.plan


async def transfer_call(
    session: AsyncSession, *, call_id: str, transferred_to: int, now: datetime | None = None
) -> TransferDecision:
    """T11: after a manual transfer, queue the responsible change the linking engine decides, if any.

    The change is queued behind the call's plan (same interaction key), so it applies after the lead exists.
    """
    key = call_key(call_id)
    plan = await stored_plan(session, key)
    if plan is None:
        raise LookupError(f"no decision stored for call {call_id!r}: plan_call runs when the call starts")
    lead_created = plan.action == Action.CREATE_LEAD or await _lead_from_card(session, key)
    verdict = on_transfer(plan, lead_created_by_this_call=lead_created, transferred_to=transferred_to)
    if verdict.changed and verdict.responsible_id is not None:
        payload = {"responsible_id": verdict.responsible_id, "rule_ids": list(verdict.rule_ids)}
        await outbox.enqueue(session, key, TRANSFER, payload, now=now)
    return verdict


#: What an employee may create from the call card (SPEC T4b).
CARD_ITEM_TYPES = ("lead", "contact")


async def create_from_card(
    session: AsyncSession,
    *,
    call_id: str,
    number: str,
    party_raw: str,
    direction: Direction | str,
    item_type: str,
    actor: Actor,
    now: datetime | None = None,
) -> LinkPlan:
    """T4b: the employee who took an offer-in-card call creates a lead or a contact from the call card.

    The item gets what an automatic one would (the plan's source, T6, and responsible, T10) and the call's
    activity; it is queued on the call's outbox key with the same idempotency keys as an automatic item, so
    clicking twice still creates one item (C2). Returns the plan that was queued.
    """
    if item_type not in CARD_ITEM_TYPES:
        raise ValueError(f"the call card creates a lead or a contact; got {item_type!r}")
    key = call_key(call_id)
    plan = await stored_plan(session, key)
    if plan is None:
        raise LookupError(f"no decision stored for call {call_id!r}: plan_call runs when the call starts")
    if plan.action != Action.OFFER_IN_CARD:
        raise CardNotOffered(
            f"call {call_id!r} was decided as {plan.action.value} ({', '.join(plan.rule_ids)}): "
            "the call card offers creation only to numbers set to offer_in_card (T4b)"
        )
    # The employee acting creates the item: their own right to create one decides, whoever the
    # queue made responsible (T10); an employee with "own" rights may create from their own card.
    require_right(actor, item_type, Access.EDIT, actor.employee_id)
    # T4b: the card makes ONE item for the caller; the other button after the first would be a duplicate.
    made = await _card_item_types(session, key)
    other = sorted(made - {item_type})
    if other:
        raise CardNotOffered(
            f"a {other[0]} was already created from the card of call {call_id!r}: "
            "the call card creates a lead or a contact, not both (T4b)"
        )
    decided = await decide_call(
        session, key=key, number=number, party_raw=party_raw, direction=direction, occurred_at=now
    )
    card_plan = replace(
        plan,
        create=(item_type,),
        record_activity=True,
        rule_ids=tuple(dict.fromkeys((*plan.rule_ids, "T4b"))),
    )
    await outbox.apply_plan(session, card_plan, decided.context, now=now)
    ended = await _call_end_queued(session, key) if item_type not in made else None
    if ended is not None:
        # The call ended before the card made its activity: its end is queued again behind it, so the
        # activity is completed (answered) rather than left open like a missed call's.
        await outbox.enqueue(session, key, CALL_ENDED, ended, now=now)
    return card_plan


async def finish_call(
    session: AsyncSession,
    *,
    call_id: str,
    answered_by: int | None,
    duration_s: float,
    ended_at: datetime | None = None,
    legs: list[dict[str, Any]] | None = None,
) -> bool:
    """The call ended: queue completing its activity (answered) or leaving it open to call back (missed).

    Queued behind the call's other writes, so it applies after the activity exists. `legs`: who talked
    to the caller and for how long, for a transferred call (SPEC R5: one activity, its end heard once).
    Returns False (and queues nothing) for a call that was never decided.
    """
    key = call_key(call_id)
    if duration_s < 0:
        if await stored_plan(session, key) is None:
            return False
        raise ValueError(f"a call lasts zero seconds or more; got {duration_s}")
    ended_at = ended_at or datetime.now(UTC)
    payload: dict[str, Any] = {"answered_by": answered_by, "duration_s": duration_s, "ended_at": ended_at.isoformat()}
    if legs:
        payload["legs"] = legs
    # One statement: the entry is added only when the call was decided.
    return await outbox.enqueue_if_decided(session, key, CALL_ENDED, payload, now=ended_at) is not None
