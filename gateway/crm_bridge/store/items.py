"""Reading and writing the built-in CRM's items, activities and timelines (one session = one unit of work).

Rights are checked with :mod:`gateway.crm_bridge.rights` only; this module never decides them itself.
Nothing here commits: the caller (the outbox worker, an API request) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from gateway.crm_bridge.backend import CrmError, ItemNotFound, NewItem
from gateway.crm_bridge.identity import normalize_email, normalize_phone
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.rights import Access, Actor, require_right
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


def phone_rows(values: Iterable[str], default_region: str | None) -> list[ItemPhone]:
    """ItemPhone rows for raw phone values; a value that is not a phone number is refused, not dropped."""
    rows: list[ItemPhone] = []
    for raw in values:
        normalized = normalize_phone(raw, default_region or "")
        if normalized is None:
            hint = "" if default_region else " (no default region: write it in international form, +CC…)"
            raise CrmError(f"{raw!r} is not a phone number{hint}")
        if normalized not in {r.normalized for r in rows}:
            rows.append(ItemPhone(value=raw.strip(), normalized=normalized))
    return rows


def email_rows(values: Iterable[str]) -> list[ItemEmail]:
    """ItemEmail rows for raw addresses; a value that is not an address is refused, not dropped."""
    rows: list[ItemEmail] = []
    for raw in values:
        normalized = normalize_email(raw)
        if normalized is None:
            raise CrmError(f"{raw!r} is not an email address (expected name@domain)")
        if normalized not in {r.normalized for r in rows}:
            rows.append(ItemEmail(value=raw.strip(), normalized=normalized))
    return rows


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


async def check_references(
    session: AsyncSession, new: NewItem, *, contact_id: int | None = None, company_id: int | None = None
) -> None:
    """Refuse a new item pointing at a source, employee, contact or company that does not exist.

    The foreign keys would refuse it too, but as an IntegrityError that says nothing a caller can fix.
    """
    if new.source_id is not None and await session.get(Source, new.source_id) is None:
        raise CrmError(f"there is no source with id {new.source_id}")
    if new.responsible_id is not None and not await _employee_exists(session, new.responsible_id):
        raise CrmError(f"there is no employee with id {new.responsible_id} to be responsible")
    refs = [ItemRef("contact", contact_id)] if contact_id is not None else []
    refs += [ItemRef("company", company_id)] if company_id is not None else []
    await ensure_exist(session, refs)


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
    require_right(actor, "lead", Access.EDIT, new.responsible_id)
    await check_references(session, new, contact_id=contact_id, company_id=company_id)
    lead = Lead(
        title=title,
        status="active",
        source_id=new.source_id,
        responsible_id=new.responsible_id,
        contact_id=contact_id,
        company_id=company_id,
        interaction_key=new.interaction_key,
        created_at=now_utc(),
        phones=phone_rows(new.phones, new.default_region),
        emails=email_rows(new.emails),
    )
    session.add(lead)
    await session.flush()
    return _created(session, ItemRef("lead", lead.id))


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
    require_right(actor, "contact", Access.EDIT, new.responsible_id)
    await check_references(session, new, company_id=company_id)
    contact = Contact(
        name=name,
        company_id=company_id,
        responsible_id=new.responsible_id,
        source_id=new.source_id,
        lead_id=lead_id,
        interaction_key=new.interaction_key,
        created_at=now_utc(),
        phones=phone_rows(new.phones, new.default_region),
        emails=email_rows(new.emails),
    )
    session.add(contact)
    await session.flush()
    if company_id is not None:
        session.add(CompanyContact(company_id=company_id, contact_id=contact.id))
        await session.flush()
    return _created(session, ItemRef("contact", contact.id))


async def create_company(
    session: AsyncSession, *, name: str, new: NewItem, actor: Actor, lead_id: int | None = None
) -> ItemRef:
    """A new company with its phones and emails."""
    require_right(actor, "company", Access.EDIT, new.responsible_id)
    await check_references(session, new)
    company = Company(
        name=name,
        responsible_id=new.responsible_id,
        source_id=new.source_id,
        lead_id=lead_id,
        interaction_key=new.interaction_key,
        created_at=now_utc(),
        phones=phone_rows(new.phones, new.default_region),
        emails=email_rows(new.emails),
    )
    session.add(company)
    await session.flush()
    return _created(session, ItemRef("company", company.id))


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
    require_right(actor, "deal", Access.EDIT, new.responsible_id)
    await check_references(session, new, contact_id=contact_id, company_id=company_id)
    if new.phones or new.emails:
        raise CrmError("a deal has no phones or emails of its own: put them on its contact or company")
    deal = Deal(
        title=title,
        pipeline_id=await resolve_pipeline(session, pipeline_id),
        status="active",
        contact_id=contact_id,
        company_id=company_id,
        responsible_id=new.responsible_id,
        source_id=new.source_id,
        lead_id=lead_id,
        interaction_key=new.interaction_key,
        created_at=now_utc(),
    )
    session.add(deal)
    await session.flush()
    return _created(session, ItemRef("deal", deal.id))


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
    unique = list(dict.fromkeys(refs))
    if not unique:
        raise CrmError("an activity must be bound to at least one item")
    await ensure_exist(session, unique)
    activity = Activity(
        kind=kind,
        direction=direction,
        subject=subject,
        interaction_key=interaction_key,
        responsible_id=responsible_id,
        deadline=deadline,
        created_at=now_utc(),
        details=dict(details or {}),
        bindings=[ActivityBinding(item_type=r.type, item_id=r.id) for r in unique],
    )
    session.add(activity)
    await session.flush()
    return activity.id


async def complete_activity(
    session: AsyncSession,
    activity_id: int,
    *,
    completed_at: datetime | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Mark an activity done at ``completed_at`` (None leaves it open, e.g. a missed call to call back)."""
    loaded = session.sync_session.identity_map.get(identity_key(Activity, activity_id))
    if loaded is not None:
        # The session holds this activity (a call note read it): change it there, so it stays current.
        await session.refresh(loaded, ["details", "completed_at"], with_for_update=True)
        if completed_at is not None:
            loaded.completed_at = completed_at
        if details:
            loaded.details = {**(loaded.details or {}), **details}  # a new dict, so the JSON column sees it
        await session.flush()
        return
    # Otherwise only its details are read (not the activity with its bindings) and written back.
    current = (await session.execute(
        sa.select(Activity.details).where(Activity.id == activity_id).with_for_update()
    )).first()
    if current is None:
        raise ItemNotFound(f"there is no activity with id {activity_id}")
    changes: dict[str, Any] = {}
    if completed_at is not None:
        changes["completed_at"] = completed_at
    if details:
        changes["details"] = {**(current.details or {}), **details}
    if changes:
        await session.execute(
            sa.update(Activity).where(Activity.id == activity_id).values(**changes)
            .execution_options(synchronize_session=False)
        )


async def add_timeline(
    session: AsyncSession, ref: ItemRef, *, kind: str, text: str, employee_id: int | None = None
) -> int:
    """A timeline entry on one item."""
    entry = TimelineEntry(
        item_type=ref.type,
        item_id=ref.id,
        kind=kind,
        text=text,
        employee_id=employee_id,
        created_at=now_utc(),
    )
    session.add(entry)
    await session.flush()
    return entry.id


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
