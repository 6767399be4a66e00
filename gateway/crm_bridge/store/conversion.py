"""Converting a lead into a contact, a company and/or a deal (SPEC T13).

The new items take the lead's responsible, source, phones and emails; the lead becomes *converted* and
points at its new contact/company; its activities stay on it and are also bound to every new item —
which bindings to add is the linking engine's pure rule (`bindings_after_conversion`), not decided here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.backend import Conversion, CrmError, NewItem
from gateway.crm_bridge.linking import ItemRef, bindings_after_conversion
from gateway.crm_bridge.rights import Access, Actor, require_right
from gateway.crm_bridge.store import items
from gateway.storage.models import ActivityBinding, ItemEmail, ItemPhone, Lead

CONVERSION_TARGETS = ("contact", "company", "deal")


def _check_targets(to: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(dict.fromkeys(to))
    unknown = [t for t in targets if t not in CONVERSION_TARGETS]
    if not targets or unknown:
        raise CrmError(
            f"a lead converts into one or more of {', '.join(CONVERSION_TARGETS)}; got {list(to)!r}"
        )
    return targets


async def convert_lead(session: AsyncSession, lead_id: int, *, to: Sequence[str], actor: Actor) -> Conversion:
    """Convert an active lead; see the module docstring for what moves where."""
    targets = _check_targets(to)
    lead_ref = ItemRef("lead", lead_id)
    lead = await items.get_item(session, lead_ref, for_update=True)
    assert isinstance(lead, Lead)
    require_right(actor, "lead", Access.EDIT, lead.responsible_id)
    for item_type in targets:
        require_right(actor, item_type, Access.EDIT, lead.responsible_id)
    if lead.status != "active":
        raise CrmError(f"lead {lead_id} is {lead.status}: only an active lead can be converted")

    # interaction_key stays None: the conversion made these items, not the call or email behind the lead.
    new = NewItem(source_id=lead.source_id, responsible_id=lead.responsible_id)
    company = contact = deal = None
    if "company" in targets:
        company = await items.create_company(session, name=lead.title, new=new, actor=actor, lead_id=lead_id)
        await _copy_fields(session, lead, company)
    if "contact" in targets:
        company_id = company.id if company else lead.company_id
        contact = await items.create_contact(
            session, name=lead.title, new=new, company_id=company_id, actor=actor, lead_id=lead_id
        )
        await _copy_fields(session, lead, contact)
    if "deal" in targets:
        deal = await items.create_deal(
            session,
            title=lead.title,
            new=new,
            pipeline_id=None,
            contact_id=contact.id if contact else lead.contact_id,
            company_id=company.id if company else lead.company_id,
            actor=actor,
            lead_id=lead_id,
        )
    lead.status = "converted"
    lead.converted_at = items.now_utc()
    lead.contact_id = lead.contact_id or (contact.id if contact else None)
    lead.company_id = lead.company_id or (company.id if company else None)
    result = Conversion(lead=lead_ref, contact=contact, company=company, deal=deal)
    await _bind_lead_activities(session, lead_ref, result.created)
    await _note_conversion(session, result, actor)
    return result


async def _copy_fields(session: AsyncSession, lead: Lead, target: ItemRef) -> None:
    """The lead's phones and emails, as written and as normalised, onto a new contact or company."""
    for phone in await lead.awaitable_attrs.phones:
        session.add(
            ItemPhone(
                item_type=target.type, item_id=target.id, value=phone.value, normalized=phone.normalized
            )
        )
    for email in await lead.awaitable_attrs.emails:
        session.add(
            ItemEmail(
                item_type=target.type, item_id=target.id, value=email.value, normalized=email.normalized
            )
        )
    await session.flush()


async def _bind_lead_activities(session: AsyncSession, lead: ItemRef, created: tuple[ItemRef, ...]) -> None:
    activity_ids = (
        await session.scalars(
            sa.select(ActivityBinding.activity_id).where(
                ActivityBinding.item_type == "lead", ActivityBinding.item_id == lead.id
            )
        )
    ).all()
    if not activity_ids:
        return
    existing = {
        (a, t, i)
        for a, t, i in (
            await session.execute(
                sa.select(
                    ActivityBinding.activity_id, ActivityBinding.item_type, ActivityBinding.item_id
                ).where(ActivityBinding.activity_id.in_(activity_ids))
            )
        ).all()
    }
    for binding in bindings_after_conversion(lead, created, activity_ids):
        if (binding.activity_id, binding.ref.type, binding.ref.id) not in existing:
            session.add(
                ActivityBinding(
                    activity_id=binding.activity_id, item_type=binding.ref.type, item_id=binding.ref.id
                )
            )
    await session.flush()


async def _note_conversion(session: AsyncSession, conversion: Conversion, actor: Actor) -> None:
    names = ", ".join(f"{r.type} {r.id}" for r in conversion.created)
    await items.add_timeline(
        session,
        conversion.lead,
        kind="converted",
        text=f"Lead converted into {names}",
        employee_id=actor.employee_id,
    )
    for ref in conversion.created:
        await items.add_timeline(
            session,
            ref,
            kind="converted",
            text=f"Created from lead {conversion.lead.id}",
            employee_id=actor.employee_id,
        )
