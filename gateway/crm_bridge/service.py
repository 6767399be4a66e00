"""The one place a LinkPlan is carried out in the CRM (ARCHITECTURE §5, §6).

The outbox worker calls the handlers in :data:`HANDLERS` with the entry's payload; they turn the plan into
backend calls. Each write is guarded by an :class:`IdempotencyKey` row
(``"<interaction key>:create_lead"``, ``"…:activity"``) added in the same transaction as the write, so
applying the same plan again — a SIP retransmission, an outbox retry, a restart — finds the key and reuses
the item instead of creating a second one (SPEC C2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.backend import CrmBackend, NewItem
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


async def once(
    session: AsyncSession,
    key: str,
    make: Callable[[], Awaitable[dict[str, Any]]],
    *,
    known: Mapping[str, IdempotencyKey] | None = None,
) -> dict[str, Any]:
    """Run ``make`` unless ``key`` was already used; either way return its (stored) result.

    The key row is written in the caller's transaction, with the write itself: both commit or neither.
    Two workers racing on one key both write, and the second commit fails on the key's primary key,
    rolling its write back. `known`: the keys already read in this transaction (see :func:`used_keys`);
    a key it lacks is taken as unused without reading it again.
    """
    existing = known.get(key) if known is not None else await session.get(IdempotencyKey, key)
    if existing is not None:
        return dict(existing.result or {})
    result = await make()
    session.add(IdempotencyKey(key=key, created_at=datetime.now(UTC), result=result))
    await session.flush()
    return result


async def used_keys(session: AsyncSession, keys: list[str]) -> dict[str, IdempotencyKey]:
    """Which of `keys` were already used, in one query (a plan checks its creations and its activity)."""
    rows = await session.scalars(sa.select(IdempotencyKey).where(IdempotencyKey.key.in_(keys)))
    return {row.key: row for row in rows}


async def created_by(session: AsyncSession, interaction_key: str, item_type: str) -> ItemRef | None:
    """The item of ``item_type`` that ``interaction_key``'s plan created, if it did."""
    row = await session.get(IdempotencyKey, f"{interaction_key}:create_{item_type}")
    return ItemRef.from_dict(row.result) if row is not None and row.result else None


def _first(refs: tuple[ItemRef, ...], item_type: str) -> int | None:
    return next((r.id for r in refs if r.type == item_type), None)


async def _create(
    session: AsyncSession,
    backend: CrmBackend,
    item_type: str,
    plan: LinkPlan,
    ctx: PlanContext,
    linked: dict[str, int | None],
) -> ItemRef:
    has_fields = item_type != "deal"  # deals reach the party through their contact/company
    new = NewItem(
        source_id=plan.source_id,
        responsible_id=plan.responsible_id,
        phones=(ctx.party_phone,) if ctx.party_phone and has_fields else (),
        emails=(ctx.party_email,) if ctx.party_email and has_fields else (),
        default_region=ctx.default_region,
        interaction_key=plan.interaction_key,
    )
    title = f"{'Call' if ctx.channel == Channel.CALL else 'Email'} from {ctx.party_label}"
    if item_type == "contact":
        return await backend.create_contact(
            session, name=ctx.party_label, new=new, company_id=linked["company"]
        )
    if item_type == "company":
        return await backend.create_company(session, name=ctx.party_label, new=new)
    if item_type == "lead":
        return await backend.create_lead(
            session, title=title, new=new, contact_id=linked["contact"], company_id=linked["company"]
        )
    return await backend.create_deal(
        session,
        title=title,
        new=new,
        pipeline_id=plan.pipeline_id,
        contact_id=linked["contact"],
        company_id=linked["company"],
    )


async def carry_out_plan(
    session: AsyncSession, backend: CrmBackend, plan: LinkPlan, ctx: PlanContext
) -> PlanOutcome:
    """Create what the plan creates and record the activity on the created and attached items, once."""
    key = plan.interaction_key
    linked: dict[str, int | None] = {
        "contact": _first(plan.attach_to, "contact"),
        "company": _first(plan.attach_to, "company"),
    }
    created: list[ItemRef] = []
    creations = sorted(plan.create, key=_CREATION_ORDER.index)
    keys = [f"{key}:create_{item_type}" for item_type in creations]
    known = await used_keys(session, [*keys, f"{key}:activity"] if plan.record_activity else keys)
    for item_type in creations:

        async def make(item_type: str = item_type) -> dict[str, Any]:
            return (await _create(session, backend, item_type, plan, ctx, linked)).to_dict()

        ref = ItemRef.from_dict(await once(session, f"{key}:create_{item_type}", make, known=known))
        created.append(ref)
        if item_type in linked:
            linked[item_type] = ref.id
    bound = tuple(dict.fromkeys([*created, *plan.attach_to]))
    activity_id: int | None = None
    if plan.record_activity and bound:

        async def record() -> dict[str, Any]:
            new_id = await backend.add_activity(
                session,
                kind=str(ctx.channel),
                direction=str(ctx.direction),
                refs=bound,
                responsible_id=plan.responsible_id,
                subject=ctx.subject,
                interaction_key=key,
                deadline=ctx.occurred_at,
                details={**ctx.details, "rule_ids": list(plan.rule_ids)},
            )
            kind = "call" if ctx.channel == Channel.CALL else "new_email"
            # M5: a mail's timeline entry shows the employee who connected the mailbox.
            shown = ctx.details.get("timeline_employee_id")
            for ref in bound:
                await backend.add_timeline(session, ref, kind=kind, text=ctx.subject, employee_id=shown)
            return {"activity_id": new_id}

        activity_id = (await once(session, f"{key}:activity", record, known=known)).get("activity_id")
    return PlanOutcome(created=tuple(created), bound_to=bound, activity_id=activity_id)


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
    recorded = await session.get(IdempotencyKey, f"{interaction_key}:activity")
    activity_id = (recorded.result or {}).get("activity_id") if recorded is not None else None
    if activity_id is None:
        return None
    ended_at = datetime.fromisoformat(outcome["ended_at"])
    answered = outcome.get("answered_by") is not None
    details = {
        "outcome": "answered" if answered else "missed",
        "answered_by": outcome.get("answered_by"),
        "duration_s": outcome.get("duration_s"),
        "ended_at": outcome["ended_at"],
    }
    if outcome.get("legs"):
        details["legs"] = outcome["legs"]  # a transferred call: who talked to the caller, for how long (R5)
    await backend.complete_activity(
        session, int(activity_id), completed_at=ended_at if answered else None, details=details,
    )
    return int(activity_id)


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


async def _handle_link_plan(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    try:
        plan = LinkPlan.from_dict(entry.payload["plan"])
        ctx = PlanContext.from_dict(entry.payload["context"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentOutboxError(f"malformed link_plan payload: {exc!r}") from exc
    await carry_out_plan(session, backend, plan, ctx)


async def _handle_transfer(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    try:
        responsible_id = int(entry.payload["responsible_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentOutboxError(f"malformed transfer payload: {exc!r}") from exc
    await carry_out_transfer(session, backend, entry.interaction_key, responsible_id)


async def _handle_call_ended(session: AsyncSession, backend: CrmBackend, entry: OutboxEntry) -> None:
    try:
        datetime.fromisoformat(entry.payload["ended_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentOutboxError(f"malformed call_ended payload: {exc!r}") from exc
    await carry_out_call_end(session, backend, entry.interaction_key, entry.payload)


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
