"""The one place a LinkPlan is carried out in the CRM (ARCHITECTURE §5, §6).

The outbox worker calls the handlers in :data:`HANDLERS` with the entry's payload; they turn the plan into
backend calls. Each write is guarded by an :class:`IdempotencyKey` row
(``"<interaction key>:create_lead"``, ``"…:activity"``) added in the same transaction as the write, so
applying the same plan again — a SIP retransmission, an outbox retry, a restart — finds the key and reuses
the item instead of creating a second one (SPEC C2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.backend import (
    ActivityChange,
    ActivitySpec,
    BatchCrmBackend,
    CrmBackend,
    ItemSpec,
    NewItem,
    TimelineSpec,
)
from gateway.crm_bridge.linking import Channel, Direction, ItemRef, LinkPlan
from gateway.storage.models import Activity, IdempotencyKey

if TYPE_CHECKING:
    from gateway.storage.models import OutboxEntry


#: Outbox entry kinds this module applies.
LINK_PLAN = "link_plan"
TRANSFER = "transfer"
CALL_ENDED = "call_ended"
CALL_NOTE = "call_note"


class PermanentOutboxError(Exception):
    """An entry that can never be applied as written (unknown kind, malformed payload).

    Retrying would not help, so the worker parks the entry as ``failed`` for an operator.
    """


# Clients first, so the lead or deal created with them can point at them.
_CREATION_ORDER = ("contact", "company", "lead", "deal")


@dataclass(frozen=True)
class PlanContext:
    """What the writes need besides the plan: who the party is and what happened."""

    channel: str
    direction: str
    party_phone: str | None = None
    party_email: str | None = None
    party_name: str | None = None
    default_region: str | None = None
    occurred_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Channel(self.channel)
        Direction(self.direction)

    @property
    def party_label(self) -> str:
        """How the party is named on items created for it."""
        return self.party_name or self.party_phone or self.party_email or "unknown party"

    @property
    def subject(self) -> str:
        """The activity's subject, e.g. ``Incoming call from +33612345678``."""
        way = "Incoming" if self.direction == Direction.INBOUND else "Outgoing"
        what = "call" if self.channel == Channel.CALL else "email"
        preposition = "from" if self.direction == Direction.INBOUND else "to"
        return f"{way} {what} {preposition} {self.party_label}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (outbox payload)."""
        return {
            "channel": str(self.channel),
            "direction": str(self.direction),
            "party_phone": self.party_phone,
            "party_email": self.party_email,
            "party_name": self.party_name,
            "default_region": self.default_region,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanContext:
        """Inverse of :meth:`to_dict`."""
        occurred = data.get("occurred_at")
        return cls(
            channel=data["channel"],
            direction=data["direction"],
            party_phone=data.get("party_phone"),
            party_email=data.get("party_email"),
            party_name=data.get("party_name"),
            default_region=data.get("default_region"),
            occurred_at=datetime.fromisoformat(occurred) if occurred else None,
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class PlanOutcome:
    """What carrying out a plan left in the CRM."""

    created: tuple[ItemRef, ...]
    bound_to: tuple[ItemRef, ...]
    activity_id: int | None


async def used_keys(session: AsyncSession, keys: list[str]) -> dict[str, IdempotencyKey]:
    """Which of `keys` were already used, in one query (a plan checks its creations and its activity)."""
    rows = await session.scalars(_USED_KEYS, {"keys": keys})
    return {row.key: row for row in rows}


# Built once: every batch of the outbox asks it, and building it cost more than running it.
_USED_KEYS = sa.select(IdempotencyKey).where(IdempotencyKey.key.in_(sa.bindparam("keys", expanding=True)))


async def created_by(session: AsyncSession, interaction_key: str, item_type: str) -> ItemRef | None:
    """The item of ``item_type`` that ``interaction_key``'s plan created, if it did."""
    row = await session.get(IdempotencyKey, f"{interaction_key}:create_{item_type}")
    return ItemRef.from_dict(row.result) if row is not None and row.result else None


def _first(refs: tuple[ItemRef, ...], item_type: str) -> int | None:
    return next((r.id for r in refs if r.type == item_type), None)


def _item_spec(item_type: str, plan: LinkPlan, ctx: PlanContext, linked: Mapping[str, int | None]) -> ItemSpec:
    has_fields = item_type != "deal"  # deals reach the party through their contact/company
    new = NewItem(
        source_id=plan.source_id,
        responsible_id=plan.responsible_id,
        phones=(ctx.party_phone,) if ctx.party_phone and has_fields else (),
        emails=(ctx.party_email,) if ctx.party_email and has_fields else (),
        default_region=ctx.default_region,
        interaction_key=plan.interaction_key,
    )
    if item_type in ("contact", "company"):
        label = ctx.party_label
    else:
        label = f"{'Call' if ctx.channel == Channel.CALL else 'Email'} from {ctx.party_label}"
    return ItemSpec(
        item_type, label, new,
        contact_id=linked["contact"] if item_type in ("lead", "deal") else None,
        company_id=linked["company"] if item_type != "company" else None,
        pipeline_id=plan.pipeline_id if item_type == "deal" else None,
    )


async def _create_items(session: AsyncSession, backend: CrmBackend, specs: list[ItemSpec]) -> list[ItemRef]:
    if not specs:
        return []
    if isinstance(backend, BatchCrmBackend):
        return await backend.create_items(session, specs)
    refs = []
    for spec in specs:
        new = spec.new
        if spec.item_type == "contact":
            ref = await backend.create_contact(session, name=spec.label, new=new, company_id=spec.company_id)
        elif spec.item_type == "company":
            ref = await backend.create_company(session, name=spec.label, new=new)
        elif spec.item_type == "lead":
            ref = await backend.create_lead(session, title=spec.label, new=new, contact_id=spec.contact_id,
                                            company_id=spec.company_id)
        else:
            ref = await backend.create_deal(session, title=spec.label, new=new, pipeline_id=spec.pipeline_id,
                                            contact_id=spec.contact_id, company_id=spec.company_id)
        refs.append(ref)
    return refs


async def _add_activities(session: AsyncSession, backend: CrmBackend, specs: list[ActivitySpec]) -> list[int]:
    if not specs:
        return []
    if isinstance(backend, BatchCrmBackend):
        return await backend.add_activities(session, specs)
    return [await backend.add_activity(
        session, kind=spec.kind, direction=spec.direction, refs=spec.refs, responsible_id=spec.responsible_id,
        subject=spec.subject, interaction_key=spec.interaction_key, deadline=spec.deadline, details=spec.details,
    ) for spec in specs]


async def _add_timelines(session: AsyncSession, backend: CrmBackend, specs: list[TimelineSpec]) -> None:
    if not specs:
        return
    if isinstance(backend, BatchCrmBackend):
        await backend.add_timelines(session, specs)
        return
    for spec in specs:
        await backend.add_timeline(session, spec.ref, kind=spec.kind, text=spec.text, employee_id=spec.employee_id)


_INSERT_KEYS = sa.insert(cast(sa.Table, IdempotencyKey.__table__))


async def carry_out_plan(
    session: AsyncSession, backend: CrmBackend, plan: LinkPlan, ctx: PlanContext
) -> PlanOutcome:
    """Create what the plan creates and record the activity on the created and attached items, once."""
    return (await carry_out_plans(session, backend, [(plan, ctx)]))[0]


async def carry_out_plans(
    session: AsyncSession, backend: CrmBackend, plans: Sequence[tuple[LinkPlan, PlanContext]]
) -> list[PlanOutcome]:
    """:func:`carry_out_plan` for each plan, in one transaction: each kind of write for all the plans at
    once (a batch backend makes each one statement), in the order one plan needs them (clients first,
    so the lead or deal created with them points at them; the activity last, on what was created).

    Each write is guarded by an idempotency key written with it: a key already used means the write
    was made and its stored result is reused (SPEC C2). Two plans of one interaction are carried out
    one after the other, the second seeing the first's keys.
    """
    outcomes: list[PlanOutcome] = []
    start = 0
    while start < len(plans):  # runs of distinct interactions
        seen: set[str] = set()
        end = start
        while end < len(plans) and plans[end][0].interaction_key not in seen:
            seen.add(plans[end][0].interaction_key)
            end += 1
        outcomes += await _carry_out_distinct(session, backend, plans[start:end])
        start = end
    return outcomes


async def _carry_out_distinct(
    session: AsyncSession, backend: CrmBackend, plans: Sequence[tuple[LinkPlan, PlanContext]]
) -> list[PlanOutcome]:
    wanted = [f"{plan.interaction_key}:create_{item_type}" for plan, _ in plans for item_type in plan.create]
    wanted += [f"{plan.interaction_key}:activity" for plan, _ in plans if plan.record_activity]
    known = await used_keys(session, wanted) if wanted else {}
    now = datetime.now(UTC)
    new_keys: list[dict[str, Any]] = []
    linked: list[dict[str, int | None]] = [
        {"contact": _first(plan.attach_to, "contact"), "company": _first(plan.attach_to, "company")}
        for plan, _ in plans
    ]
    created: list[list[ItemRef]] = [[] for _ in plans]
    for item_type in _CREATION_ORDER:
        todo: list[tuple[int, ItemSpec]] = []
        for index, (plan, ctx) in enumerate(plans):
            if item_type not in plan.create:
                continue
            used = known.get(f"{plan.interaction_key}:create_{item_type}")
            if used is not None:
                created[index].append(ItemRef.from_dict(dict(used.result or {})))
            else:
                todo.append((index, _item_spec(item_type, plan, ctx, linked[index])))
        refs = await _create_items(session, backend, [spec for _, spec in todo])
        for (index, _), ref in zip(todo, refs, strict=True):
            created[index].append(ref)
            new_keys.append({"key": f"{plans[index][0].interaction_key}:create_{item_type}", "created_at": now,
                             "result": ref.to_dict()})
        for index, (plan, _) in enumerate(plans):
            if item_type in linked[index] and item_type in plan.create:
                linked[index][item_type] = next(ref.id for ref in created[index] if ref.type == item_type)
    bound = [tuple(dict.fromkeys([*created[index], *plan.attach_to])) for index, (plan, _) in enumerate(plans)]
    activity_ids: list[int | None] = [None] * len(plans)
    recording: list[int] = []
    for index, (plan, _) in enumerate(plans):
        if not (plan.record_activity and bound[index]):
            continue
        used = known.get(f"{plan.interaction_key}:activity")
        if used is not None:
            activity_ids[index] = dict(used.result or {}).get("activity_id")
        else:
            recording.append(index)
    new_ids = await _add_activities(session, backend, [
        ActivitySpec(
            kind=str(plans[index][1].channel), direction=str(plans[index][1].direction), refs=bound[index],
            responsible_id=plans[index][0].responsible_id, subject=plans[index][1].subject,
            interaction_key=plans[index][0].interaction_key, deadline=plans[index][1].occurred_at,
            details={**plans[index][1].details, "rule_ids": list(plans[index][0].rule_ids)},
        )
        for index in recording
    ])
    timeline: list[TimelineSpec] = []
    for index, activity_id in zip(recording, new_ids, strict=True):
        plan, ctx = plans[index]
        activity_ids[index] = activity_id
        kind = "call" if ctx.channel == Channel.CALL else "new_email"
        # M5: a mail's timeline entry shows the employee who connected the mailbox.
        shown = ctx.details.get("timeline_employee_id")
        timeline += [TimelineSpec(ref, kind, ctx.subject, shown) for ref in bound[index]]
        new_keys.append({"key": f"{plan.interaction_key}:activity", "created_at": now,
                         "result": {"activity_id": activity_id}})
    await _add_timelines(session, backend, timeline)
    if new_keys:
        # With the writes, in their transaction: both commit or neither. Two workers racing on one key
        # both write, and the second commit fails on the key's primary key, rolling its writes back.
        await session.execute(_INSERT_KEYS, new_keys)
    return [PlanOutcome(created=tuple(created[index]), bound_to=bound[index], activity_id=activity_ids[index])
            for index in range(len(plans))]


async def carry_out_transfer(
    session: AsyncSession, backend: CrmBackend, interaction_key: str, responsible_id: int
) -> ItemRef | None:
    """T11: the lead this interaction created gets the colleague the call was transferred to.

    The transfer entry is queued after the plan's entry of the same key, so the lead exists by now;
    when the interaction created no lead (nothing was created from the call card) nothing changes.
    """
    ref = await created_by(session, interaction_key, "lead")
    if ref is not None:
        await backend.set_responsible(session, ref, responsible_id)
    return ref


async def carry_out_call_end(
    session: AsyncSession, backend: CrmBackend, interaction_key: str, outcome: Mapping[str, Any]
) -> int | None:
    """Complete the call's activity when the call was answered; a missed call's activity stays open.

    Returns the activity's id, or None when the plan recorded no activity (employee, exception, card).
    """
    return (await carry_out_call_ends(session, backend, [(interaction_key, outcome)]))[0]


async def carry_out_call_ends(
    session: AsyncSession, backend: CrmBackend, ends: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[int | None]:
    """:func:`carry_out_call_end` for each (interaction key, outcome): one read of the activities the
    calls recorded, and one write for all of them with a batch backend."""
    keys = [f"{interaction_key}:activity" for interaction_key, _ in ends]
    recorded = await used_keys(session, keys) if keys else {}
    activity_ids: list[int | None] = []
    changes: list[ActivityChange] = []
    for key, (_, outcome) in zip(keys, ends, strict=True):
        used = recorded.get(key)
        activity_id = dict(used.result or {}).get("activity_id") if used is not None else None
        activity_ids.append(int(activity_id) if activity_id is not None else None)
        if activity_id is None:
            continue
        answered = outcome.get("answered_by") is not None
        details = {
            "outcome": "answered" if answered else "missed",
            "answered_by": outcome.get("answered_by"),
            "duration_s": outcome.get("duration_s"),
            "ended_at": outcome["ended_at"],
        }
        if outcome.get("legs"):
            details["legs"] = outcome["legs"]  # a transferred call: who talked to the caller, for how long (R5)
        ended_at = datetime.fromisoformat(outcome["ended_at"])
        changes.append(ActivityChange(int(activity_id), ended_at if answered else None, details))
    if isinstance(backend, BatchCrmBackend):
        if changes:
            await backend.complete_activities(session, changes)
    else:
        for change in changes:
            await backend.complete_activity(session, change.activity_id, completed_at=change.completed_at,
                                            details=change.details)
    return activity_ids


async def carry_out_call_note(
    session: AsyncSession, backend: CrmBackend, interaction_key: str, note: Mapping[str, Any]
) -> int | None:
    """A note from the call card: kept in the call activity's details and shown on each of its items'
    timelines. Queued behind the call's plan, so the activity exists by now; None when it recorded none."""
    recorded = await session.get(IdempotencyKey, f"{interaction_key}:activity")
    activity_id = (recorded.result or {}).get("activity_id") if recorded is not None else None
    activity = await session.get(Activity, int(activity_id)) if activity_id is not None else None
    if activity is None:
        return None
    notes = [*(activity.details or {}).get("notes", ()), dict(note)]
    await backend.complete_activity(session, activity.id, completed_at=None, details={"notes": notes})
    for binding in activity.bindings:
        await backend.add_timeline(session, ItemRef(binding.item_type, binding.item_id), kind="note",
                                   text=str(note["text"]), employee_id=note.get("employee_id"))
    return activity.id


def _plan_of(entry: OutboxEntry) -> tuple[LinkPlan, PlanContext]:
    try:
        plan = LinkPlan.from_dict(entry.payload["plan"])
        ctx = PlanContext.from_dict(entry.payload["context"])
    except (KeyError, TypeError, ValueError) as exc:  # LinkPlan refuses an item type it does not know
        raise PermanentOutboxError(f"malformed link_plan payload: {exc!r}") from exc
    return plan, ctx


async def _handle_link_plan(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    await carry_out_plan(session, backend, *_plan_of(entry))


async def _handle_link_plans(session: AsyncSession, backend: CrmBackend, entries: Sequence[OutboxEntry]) -> None:
    await carry_out_plans(session, backend, [_plan_of(entry) for entry in entries])


async def _handle_transfer(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    try:
        responsible_id = int(entry.payload["responsible_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentOutboxError(f"malformed transfer payload: {exc!r}") from exc
    await carry_out_transfer(session, backend, entry.interaction_key, responsible_id)


def _end_of(entry: OutboxEntry) -> tuple[str, Mapping[str, Any]]:
    try:
        datetime.fromisoformat(entry.payload["ended_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentOutboxError(f"malformed call_ended payload: {exc!r}") from exc
    return entry.interaction_key, entry.payload


async def _handle_call_ended(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    await carry_out_call_end(session, backend, *_end_of(entry))


async def _handle_calls_ended(session: AsyncSession, backend: CrmBackend, entries: Sequence[OutboxEntry]) -> None:
    await carry_out_call_ends(session, backend, [_end_of(entry) for entry in entries])


async def _handle_call_note(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    if not isinstance(entry.payload.get("text"), str):
        raise PermanentOutboxError(f"malformed call_note payload: {entry.payload!r}")
    await carry_out_call_note(session, backend, entry.interaction_key, entry.payload)


#: Outbox entry kind → how to apply it (used by :class:`gateway.crm_bridge.outbox.OutboxWorker`).
HANDLERS: dict[str, Callable[[AsyncSession, CrmBackend, OutboxEntry], Awaitable[None]]] = {
    LINK_PLAN: _handle_link_plan,
    TRANSFER: _handle_transfer,
    CALL_ENDED: _handle_call_ended,
    CALL_NOTE: _handle_call_note,
}


#: Outbox entry kind → how to apply many entries of that kind at once (distinct interactions, in one
#: transaction); what the one-entry handler does for each.
BATCH_HANDLERS: dict[str, Callable[[AsyncSession, CrmBackend, Sequence[OutboxEntry]], Awaitable[None]]] = {
    LINK_PLAN: _handle_link_plans,
    CALL_ENDED: _handle_calls_ended,
}
