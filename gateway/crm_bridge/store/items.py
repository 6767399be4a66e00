"""Reading and writing the built-in CRM's items, activities and timelines (one session = one unit of work).

Rights are checked with :mod:`gateway.crm_bridge.rights` only; this module never decides them itself.
Nothing here commits: the caller (the outbox worker, an API request) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from gateway.crm_bridge.backend import (
    ActivityChange,
    ActivitySpec,
    CrmError,
    ItemNotFound,
    ItemSpec,
    NewItem,
    TimelineSpec,
)
from gateway.crm_bridge.identity import normalize_email, normalize_phone
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.rights import Access, Actor, require_right
from gateway.storage.base import UtcDateTime
from gateway.storage.models import (
    Activity,
    ActivityBinding,
    Company,
    CompanyContact,
    Contact,
    Deal,
    Employee,
    ItemEmail,
    ItemPhone,
    Lead,
    Pipeline,
    Source,
    TimelineEntry,
)

Item = Lead | Contact | Company | Deal
MODELS: dict[str, type[Item]] = {"lead": Lead, "contact": Contact, "company": Company, "deal": Deal}


def now_utc() -> datetime:
    """The store's clock: timezone-aware UTC."""
    return datetime.now(UTC)


def phone_rows(values: Iterable[str], default_region: str | None) -> list[tuple[str, str]]:
    """(value as written, normalised) for raw phone values, each number once; a value that is not a
    phone number is refused, not dropped."""
    rows: dict[str, str] = {}
    for raw in values:
        normalized = normalize_phone(raw, default_region or "")
        if normalized is None:
            hint = "" if default_region else " (no default region: write it in international form, +CC…)"
            raise CrmError(f"{raw!r} is not a phone number{hint}")
        rows.setdefault(normalized, raw.strip())
    return [(value, normalized) for normalized, value in rows.items()]


def email_rows(values: Iterable[str]) -> list[tuple[str, str]]:
    """(value as written, normalised) for raw addresses, each address once; a value that is not an
    address is refused, not dropped."""
    rows: dict[str, str] = {}
    for raw in values:
        normalized = normalize_email(raw)
        if normalized is None:
            raise CrmError(f"{raw!r} is not an email address (expected name@domain)")
        rows.setdefault(normalized, raw.strip())
    return [(value, normalized) for normalized, value in rows.items()]


async def get_item(session: AsyncSession, ref: ItemRef, *, for_update: bool = False) -> Item:
    """The item behind ``ref``; raises :class:`ItemNotFound`."""
    model = MODELS[ref.type]
    item = await session.get(model, ref.id, with_for_update=True if for_update else None)
    if item is None:
        raise ItemNotFound(f"there is no {ref.type} with id {ref.id}")
    return item


async def ensure_exist(session: AsyncSession, refs: Iterable[ItemRef]) -> None:
    """Raise :class:`ItemNotFound` naming the first reference that has no item.

    Items this transaction created are known to exist and are not read again.
    """
    made = created_here(session)
    by_type: dict[str, set[int]] = {}
    for ref in refs:
        if ref not in made:
            by_type.setdefault(ref.type, set()).add(ref.id)
    for item_type, ids in by_type.items():
        model = MODELS[item_type]
        found = set((await session.scalars(sa.select(model.id).where(model.id.in_(ids)))).all())
        missing = sorted(ids - found)
        if missing:
            raise ItemNotFound(f"there is no {item_type} with id {missing[0]}")


_CREATED = "crm_items_created"


def created_here(session: AsyncSession) -> set[ItemRef]:
    """The items created in the session's current transaction (none once it ended: a new one starts empty)."""
    transaction = session.sync_session.get_transaction()
    owner, made = session.info.get(_CREATED, (None, set()))
    if transaction is None or owner is not transaction:
        made = set()
        session.info[_CREATED] = (transaction, made)
    return made


def _created(session: AsyncSession, ref: ItemRef) -> ItemRef:
    created_here(session).add(ref)
    return ref


async def resolve_pipeline(session: AsyncSession, pipeline_id: int | None) -> int:
    """``pipeline_id`` checked, or the default pipeline when None (SPEC T12)."""
    if pipeline_id is not None:
        if await session.get(Pipeline, pipeline_id) is None:
            raise CrmError(f"there is no pipeline with id {pipeline_id}")
        return pipeline_id
    default = await session.scalar(
        sa.select(Pipeline.id).where(Pipeline.is_default.is_(True)).order_by(Pipeline.id)
    )
    if default is None:
        raise CrmError("no default pipeline: mark one pipeline as default or name one")
    return int(default)


def _table(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


_ITEM_COLUMNS: dict[str, tuple[str, ...]] = {
    "lead": ("title", "status", "source_id", "responsible_id", "contact_id", "company_id", "interaction_key",
             "created_at"),
    "contact": ("name", "company_id", "responsible_id", "source_id", "lead_id", "interaction_key", "created_at"),
    "company": ("name", "responsible_id", "source_id", "lead_id", "interaction_key", "created_at"),
    "deal": ("title", "pipeline_id", "status", "contact_id", "company_id", "responsible_id", "source_id", "lead_id",
             "interaction_key", "created_at"),
}
#: Built once: on the call path, building a statement costs more than running it. RETURNING in the
#: parameters' order: the ids go back to the specs they were made for.
_INSERT_ITEM = {
    item_type: sa.insert(_table(MODELS[item_type])).returning(
        _table(MODELS[item_type]).c.id, sort_by_parameter_order=True)
    for item_type in MODELS
}
_INSERT_PHONES = sa.insert(_table(ItemPhone))
_INSERT_EMAILS = sa.insert(_table(ItemEmail))
_INSERT_COMPANY_CONTACTS = sa.insert(_table(CompanyContact))
_INSERT_ACTIVITIES = sa.insert(_table(Activity)).returning(_table(Activity).c.id, sort_by_parameter_order=True)
_INSERT_BINDINGS = sa.insert(_table(ActivityBinding))
_INSERT_TIMELINE = sa.insert(_table(TimelineEntry)).returning(
    _table(TimelineEntry).c.id, sort_by_parameter_order=True)


def _item_row(spec: ItemSpec, pipeline_id: int | None, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "title": spec.label, "name": spec.label, "status": "active", "source_id": spec.new.source_id,
        "responsible_id": spec.new.responsible_id, "contact_id": spec.contact_id, "company_id": spec.company_id,
        "lead_id": spec.lead_id, "pipeline_id": pipeline_id, "interaction_key": spec.new.interaction_key,
        "created_at": now,
    }
    return {column: row[column] for column in _ITEM_COLUMNS[spec.item_type]}


async def create_items(session: AsyncSession, specs: Sequence[ItemSpec], *, actor: Actor) -> list[ItemRef]:
    """New items (leads and deals active), with their phones and emails, one statement per table for
    all of them; the refs in the specs' order. A spec that cannot be created as written raises
    :class:`CrmError` (a right missing, a source, employee, pipeline, contact or company that does not
    exist, a value that is not a phone or an address) and nothing is written."""
    for spec in specs:
        if spec.item_type not in MODELS:
            raise CrmError(f"there is no item type {spec.item_type!r}")
        require_right(actor, spec.item_type, Access.EDIT, spec.new.responsible_id)
        if spec.item_type == "deal" and (spec.new.phones or spec.new.emails):
            raise CrmError("a deal has no phones or emails of its own: put them on its contact or company")
    await _check_references(session, specs)
    values = [(phone_rows(spec.new.phones, spec.new.default_region), email_rows(spec.new.emails)) for spec in specs]
    pipelines: dict[int | None, int] = {}
    for spec in specs:
        if spec.item_type == "deal" and spec.pipeline_id not in pipelines:
            pipelines[spec.pipeline_id] = await resolve_pipeline(session, spec.pipeline_id)
    now = now_utc()
    refs: list[ItemRef | None] = [None] * len(specs)
    for item_type in MODELS:
        chosen = [index for index, spec in enumerate(specs) if spec.item_type == item_type]
        if not chosen:
            continue
        rows = [_item_row(specs[index], pipelines.get(specs[index].pipeline_id), now) for index in chosen]
        ids = (await session.execute(_INSERT_ITEM[item_type], rows)).scalars().all()
        for index, item_id in zip(chosen, ids, strict=True):
            refs[index] = _created(session, ItemRef(item_type, int(item_id)))
    made = cast(list[ItemRef], refs)
    phones = [{"item_type": ref.type, "item_id": ref.id, "value": value, "normalized": normalized}
              for ref, (rows_, _) in zip(made, values, strict=True) for value, normalized in rows_]
    emails = [{"item_type": ref.type, "item_id": ref.id, "value": value, "normalized": normalized}
              for ref, (_, rows_) in zip(made, values, strict=True) for value, normalized in rows_]
    members = [{"company_id": spec.company_id, "contact_id": ref.id}
               for ref, spec in zip(made, specs, strict=True) if ref.type == "contact" and spec.company_id is not None]
    for statement, rows in ((_INSERT_PHONES, phones), (_INSERT_EMAILS, emails), (_INSERT_COMPANY_CONTACTS, members)):
        if rows:
            await session.execute(statement, rows)
    return made


async def _check_references(session: AsyncSession, specs: Sequence[ItemSpec]) -> None:
    """Refuse new items pointing at a source, employee, contact or company that does not exist.

    The foreign keys would refuse them too, but as an IntegrityError that says nothing a caller can fix.
    """
    sources = {spec.new.source_id for spec in specs if spec.new.source_id is not None}
    if sources:
        found = set((await session.scalars(_SOURCE_IDS, {"ids": list(sources)})).all())
        for source_id in sorted(sources - found)[:1]:
            raise CrmError(f"there is no source with id {source_id}")
    employees = {spec.new.responsible_id for spec in specs if spec.new.responsible_id is not None}
    if employees:
        found = set((await session.scalars(_EMPLOYEE_IDS, {"ids": list(employees)})).all())
        for employee_id in sorted(employees - found)[:1]:
            raise CrmError(f"there is no employee with id {employee_id} to be responsible")
    refs = [ItemRef("contact", spec.contact_id) for spec in specs if spec.contact_id is not None]
    refs += [ItemRef("company", spec.company_id) for spec in specs if spec.company_id is not None]
    await ensure_exist(session, refs)


_EMPLOYEE_IDS = sa.select(Employee.id).where(Employee.id.in_(sa.bindparam("ids", expanding=True)))
_SOURCE_IDS = sa.select(Source.id).where(Source.id.in_(sa.bindparam("ids", expanding=True)))


async def create_lead(
    session: AsyncSession,
    *,
    title: str,
    new: NewItem,
    contact_id: int | None,
    company_id: int | None,
    actor: Actor,
) -> ItemRef:
    """A new active lead with its phones and emails."""
    spec = ItemSpec("lead", title, new, contact_id=contact_id, company_id=company_id)
    return (await create_items(session, [spec], actor=actor))[0]


async def create_contact(
    session: AsyncSession,
    *,
    name: str,
    new: NewItem,
    company_id: int | None,
    actor: Actor,
    lead_id: int | None = None,
) -> ItemRef:
    """A new contact; when it belongs to a company it is also listed among the company's contacts."""
    spec = ItemSpec("contact", name, new, company_id=company_id, lead_id=lead_id)
    return (await create_items(session, [spec], actor=actor))[0]


async def create_company(
    session: AsyncSession, *, name: str, new: NewItem, actor: Actor, lead_id: int | None = None
) -> ItemRef:
    """A new company with its phones and emails."""
    return (await create_items(session, [ItemSpec("company", name, new, lead_id=lead_id)], actor=actor))[0]


async def create_deal(
    session: AsyncSession,
    *,
    title: str,
    new: NewItem,
    pipeline_id: int | None,
    contact_id: int | None,
    company_id: int | None,
    actor: Actor,
    lead_id: int | None = None,
) -> ItemRef:
    """A new active deal; deals carry no phones or emails of their own (their client does)."""
    spec = ItemSpec("deal", title, new, contact_id=contact_id, company_id=company_id, pipeline_id=pipeline_id,
                    lead_id=lead_id)
    return (await create_items(session, [spec], actor=actor))[0]


async def close_item(session: AsyncSession, ref: ItemRef, *, actor: Actor) -> None:
    """Close an active lead or deal (contacts and companies are never closed)."""
    if ref.type not in ("lead", "deal"):
        raise CrmError(f"only leads and deals are closed; a {ref.type} stays open")
    item = await get_item(session, ref, for_update=True)
    require_right(actor, ref.type, Access.EDIT, item.responsible_id)
    if item.status != "active":
        raise CrmError(f"{ref.type} {ref.id} is {item.status}: only an active {ref.type} can be closed")
    item.status = "closed"
    item.closed_at = now_utc()
    await add_timeline(
        session, ref, kind="closed", text=f"{ref.type.capitalize()} closed", employee_id=actor.employee_id
    )


async def set_responsible(session: AsyncSession, ref: ItemRef, responsible_id: int, *, actor: Actor) -> None:
    """Give an item a new responsible and write it on the timeline (T11); same responsible: no-op."""
    item = await get_item(session, ref, for_update=True)
    require_right(actor, ref.type, Access.EDIT, item.responsible_id)
    if item.responsible_id == responsible_id:
        return
    if not await _employee_exists(session, responsible_id):
        raise CrmError(f"there is no employee with id {responsible_id} to be responsible")
    before = item.responsible_id
    item.responsible_id = responsible_id
    await add_timeline(
        session,
        ref,
        kind="responsible_changed",
        text=f"Responsible changed from employee {before} to employee {responsible_id}",
        employee_id=actor.employee_id,
    )


async def add_activities(session: AsyncSession, specs: Sequence[ActivitySpec]) -> list[int]:
    """The activities with their bindings, one statement per table for all of them; ids in order."""
    bound = [list(dict.fromkeys(spec.refs)) for spec in specs]
    if not all(bound):
        raise CrmError("an activity must be bound to at least one item")
    await ensure_exist(session, [ref for refs in bound for ref in refs])
    if not specs:
        return []
    now = now_utc()
    rows = [{"kind": spec.kind, "direction": spec.direction, "subject": spec.subject,
             "interaction_key": spec.interaction_key, "responsible_id": spec.responsible_id,
             "deadline": spec.deadline, "completed_at": None, "created_at": now, "details": dict(spec.details)}
            for spec in specs]
    ids = [int(i) for i in (await session.execute(_INSERT_ACTIVITIES, rows)).scalars().all()]
    await session.execute(_INSERT_BINDINGS, [
        {"activity_id": activity_id, "item_type": ref.type, "item_id": ref.id}
        for activity_id, refs in zip(ids, bound, strict=True) for ref in refs
    ])
    return ids


async def add_activity(
    session: AsyncSession,
    *,
    kind: str,
    direction: str,
    refs: Sequence[ItemRef],
    responsible_id: int | None,
    subject: str,
    interaction_key: str | None = None,
    deadline: datetime | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """An activity bound to every item in ``refs`` (at least one, all existing)."""
    spec = ActivitySpec(kind, direction, refs, responsible_id, subject, interaction_key, deadline, dict(details or {}))
    return (await add_activities(session, [spec]))[0]


_ACTIVITY_DETAILS = (
    sa.select(Activity.id, Activity.details)
    .where(Activity.id.in_(sa.bindparam("ids", expanding=True)))
    .with_for_update()
)
_UPDATE_ACTIVITY = (
    sa.update(_table(Activity))
    .where(_table(Activity).c.id == sa.bindparam("activity_id"))
    .values(completed_at=sa.func.coalesce(sa.bindparam("new_completed_at", type_=UtcDateTime()),
                                          _table(Activity).c.completed_at),
            details=sa.bindparam("new_details", type_=sa.JSON()))
)


async def complete_activities(session: AsyncSession, changes: Sequence[ActivityChange]) -> None:
    """Apply each change (see :class:`ActivityChange`): one read and one write for all of them."""
    loaded = [change for change in changes
              if session.sync_session.identity_map.get(identity_key(Activity, change.activity_id)) is not None]
    for change in loaded:
        await complete_activity(session, change.activity_id, completed_at=change.completed_at, details=change.details)
    held = {change.activity_id for change in loaded}
    rest = [change for change in changes if change.activity_id not in held]
    if not rest:
        return
    # Only their details are read (not the activities with their bindings) and written back.
    current = {row.id: row.details for row in await session.execute(
        _ACTIVITY_DETAILS, {"ids": sorted({change.activity_id for change in rest})})}
    for change in rest:
        if change.activity_id not in current:
            raise ItemNotFound(f"there is no activity with id {change.activity_id}")
    rows = []
    for change in rest:  # two changes of one activity: the second merges into the first
        merged = current[change.activity_id] = {**(current[change.activity_id] or {}), **change.details}
        rows.append({"activity_id": change.activity_id, "new_completed_at": change.completed_at,
                     "new_details": merged})
    await session.execute(_UPDATE_ACTIVITY, rows, execution_options={"synchronize_session": False})


async def complete_activity(
    session: AsyncSession,
    activity_id: int,
    *,
    completed_at: datetime | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Mark an activity done at ``completed_at`` (None leaves it open, e.g. a missed call to call back)."""
    loaded = session.sync_session.identity_map.get(identity_key(Activity, activity_id))
    if loaded is None:
        await complete_activities(session, [ActivityChange(activity_id, completed_at, dict(details or {}))])
        return
    # The session holds this activity (a call note read it): change it there, so it stays current.
    await session.refresh(loaded, ["details", "completed_at"], with_for_update=True)
    if completed_at is not None:
        loaded.completed_at = completed_at
    if details:
        loaded.details = {**(loaded.details or {}), **details}  # a new dict, so the JSON column sees it
    await session.flush()


async def add_timelines(session: AsyncSession, specs: Sequence[TimelineSpec]) -> list[int]:
    """Timeline entries, one statement for all of them; ids in order."""
    if not specs:
        return []
    now = now_utc()
    rows = [{"item_type": spec.ref.type, "item_id": spec.ref.id, "kind": spec.kind, "text": spec.text,
             "employee_id": spec.employee_id, "created_at": now} for spec in specs]
    for row in rows:
        if row["item_type"] not in MODELS:
            raise CrmError(f"there is no item type {row['item_type']!r}")
    return [int(i) for i in (await session.execute(_INSERT_TIMELINE, rows)).scalars().all()]


async def add_timeline(
    session: AsyncSession, ref: ItemRef, *, kind: str, text: str, employee_id: int | None = None
) -> int:
    """A timeline entry on one item."""
    return (await add_timelines(session, [TimelineSpec(ref, kind, text, employee_id)]))[0]


async def activities_of(session: AsyncSession, ref: ItemRef) -> list[Activity]:
    """The activities bound to an item, oldest first."""
    stmt = (
        sa.select(Activity)
        .join(ActivityBinding, ActivityBinding.activity_id == Activity.id)
        .where(ActivityBinding.item_type == ref.type, ActivityBinding.item_id == ref.id)
        .order_by(Activity.id)
    )
    return list((await session.scalars(stmt)).all())


async def timeline_of(session: AsyncSession, ref: ItemRef) -> list[TimelineEntry]:
    """An item's timeline, oldest first."""
    stmt = (
        sa.select(TimelineEntry)
        .where(TimelineEntry.item_type == ref.type, TimelineEntry.item_id == ref.id)
        .order_by(TimelineEntry.id)
    )
    return list((await session.scalars(stmt)).all())


async def _employee_exists(session: AsyncSession, employee_id: int) -> bool:
    # One indexed lookup: `session.get(Employee, …)` would also load the phones, emails and rights
    # (three more queries on every item a call creates).
    return await session.scalar(sa.select(Employee.id).where(Employee.id == employee_id)) is not None
