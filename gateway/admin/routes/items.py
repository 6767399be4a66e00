"""/items: CRM items through the CRM service, with every right checked by crm_bridge.rights.

Nothing here decides a right: the service's `require_right`/`check_right`/`Actor.scope` do, and a
refusal comes back as 403 with the service's message.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import forbidden
from gateway.admin.lookup import referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.items import (
    CompanyCreate,
    ContactCreate,
    ConversionOut,
    ConvertLead,
    DealCreate,
    ItemOut,
    ItemRefOut,
    ItemType,
    LeadCreate,
)
from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.rights import Access, Actor, Scope, load_actor, require_right
from gateway.crm_bridge.store import BuiltinCrm, get_item
from gateway.crm_bridge.store.items import MODELS
from gateway.storage.models import Company, Contact, Employee, Pipeline, Source

router = APIRouter(prefix="/items", tags=["crm items"])
_crm = BuiltinCrm()
TypePath = Annotated[ItemType, Path(description="lead, contact, company or deal")]


async def _actor(session: AsyncSession, principal: CurrentPrincipal) -> Actor:
    return await load_actor(session, principal.employee_id)


async def item_out(item_type: str, item: Any) -> ItemOut:
    """The API view of an item row of any type."""
    has_party = item_type != "deal"
    phones = [p.value for p in await item.awaitable_attrs.phones] if has_party else []
    emails = [e.value for e in await item.awaitable_attrs.emails] if has_party else []
    return ItemOut(
        type=item_type, id=item.id, title=getattr(item, "title", None) or getattr(item, "name", ""),
        status=getattr(item, "status", "active"), responsible_id=item.responsible_id, source_id=item.source_id,
        phones=phones, emails=emails, contact_id=getattr(item, "contact_id", None),
        company_id=getattr(item, "company_id", None), lead_id=getattr(item, "lead_id", None),
        pipeline_id=getattr(item, "pipeline_id", None), stage=getattr(item, "stage", None),
        interaction_key=item.interaction_key, created_at=item.created_at,
    )


async def _new_item(session: AsyncSession, body: Any, principal: CurrentPrincipal) -> NewItem:
    """Check the body's references (422 naming the field) and build the service's NewItem."""
    responsible = body.responsible_id if body.responsible_id is not None else principal.employee_id
    await referenced(session, Employee, responsible, "employee", "responsible_id")
    if body.source_id is not None:
        await referenced(session, Source, body.source_id, "source", "source_id")
    for field, model, what in (("contact_id", Contact, "contact"), ("company_id", Company, "company"),
                               ("pipeline_id", Pipeline, "pipeline")):
        value = getattr(body, field, None)
        if value is not None:
            await referenced(session, model, value, what, field)
    return NewItem(source_id=body.source_id, responsible_id=responsible,
                   phones=tuple(getattr(body, "phones", ())), emails=tuple(getattr(body, "emails", ())),
                   default_region=getattr(body, "default_region", None))


async def _created(session: AsyncSession, ref: ItemRef) -> ItemOut:
    await session.commit()
    return await item_out(ref.type, await get_item(session, ref))


@router.post("/lead", response_model=ItemOut, status_code=status.HTTP_201_CREATED, summary="Create a lead")
async def create_lead(body: LeadCreate, session: SessionDep, principal: CurrentPrincipal) -> ItemOut:
    """Needs the edit right on leads (own: only as their responsible)."""
    new = await _new_item(session, body, principal)
    ref = await _crm.create_lead(session, title=body.title, new=new, contact_id=body.contact_id,
                                 company_id=body.company_id, actor=await _actor(session, principal))
    return await _created(session, ref)


@router.post("/contact", response_model=ItemOut, status_code=status.HTTP_201_CREATED,
             summary="Create a contact")
async def create_contact(body: ContactCreate, session: SessionDep, principal: CurrentPrincipal) -> ItemOut:
    """Needs the edit right on contacts."""
    new = await _new_item(session, body, principal)
    ref = await _crm.create_contact(session, name=body.name, new=new, company_id=body.company_id,
                                    actor=await _actor(session, principal))
    return await _created(session, ref)


@router.post("/company", response_model=ItemOut, status_code=status.HTTP_201_CREATED,
             summary="Create a company")
async def create_company(body: CompanyCreate, session: SessionDep, principal: CurrentPrincipal) -> ItemOut:
    """Needs the edit right on companies."""
    new = await _new_item(session, body, principal)
    ref = await _crm.create_company(session, name=body.name, new=new, actor=await _actor(session, principal))
    return await _created(session, ref)


@router.post("/deal", response_model=ItemOut, status_code=status.HTTP_201_CREATED, summary="Create a deal")
async def create_deal(body: DealCreate, session: SessionDep, principal: CurrentPrincipal) -> ItemOut:
    """Needs the edit right on deals."""
    new = await _new_item(session, body, principal)
    ref = await _crm.create_deal(session, title=body.title, new=new, pipeline_id=body.pipeline_id,
                                 contact_id=body.contact_id, company_id=body.company_id,
                                 actor=await _actor(session, principal))
    return await _created(session, ref)


@router.get("/{item_type}", response_model=Page[ItemOut], summary="List the items the caller may view")
async def list_items(item_type: TypePath, session: SessionDep, page: PageDep,
                     principal: CurrentPrincipal) -> Page[ItemOut]:
    """View right 'all': every item; 'own': the caller's items; 'none': 403."""
    actor = await _actor(session, principal)
    scope = actor.scope(item_type, Access.VIEW)
    if scope is Scope.NONE:
        raise forbidden(f"you may not view {item_type}s: ask an admin for the view right on {item_type}s")
    model = MODELS[item_type]
    query = select(model)
    if scope is Scope.OWN:
        query = query.where(model.responsible_id == principal.employee_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(model.id).limit(page.limit).offset(page.offset))
    return Page(items=[await item_out(item_type, r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.get("/{item_type}/{item_id}", response_model=ItemOut, summary="Read one item")
async def read_item(item_type: TypePath, item_id: IdPath, session: SessionDep,
                    principal: CurrentPrincipal) -> ItemOut:
    """Needs the view right on the item (own: only as its responsible)."""
    item = await get_item(session, ItemRef(item_type, item_id))
    require_right(await _actor(session, principal), item_type, Access.VIEW, item.responsible_id)
    return await item_out(item_type, item)


@router.post("/lead/{lead_id}/convert", response_model=ConversionOut, summary="Convert a lead (T13)")
async def convert_lead(lead_id: IdPath, body: ConvertLead, session: SessionDep,
                       principal: CurrentPrincipal) -> ConversionOut:
    """Into a contact, a company and/or a deal; the lead's activities stay on it and join the new items."""
    result = await _crm.convert_lead(session, lead_id, to=body.to, actor=await _actor(session, principal))
    await session.commit()

    def ref(r: ItemRef | None) -> ItemRefOut | None:
        return ItemRefOut(type=r.type, id=r.id) if r is not None else None

    return ConversionOut(lead=ItemRefOut(type="lead", id=lead_id), contact=ref(result.contact),
                         company=ref(result.company), deal=ref(result.deal))


@router.post("/{item_type}/{item_id}/close", response_model=ItemOut, summary="Close a lead or a deal")
async def close_item(item_type: TypePath, item_id: IdPath, session: SessionDep,
                     principal: CurrentPrincipal) -> ItemOut:
    """Needs the edit right on the item; contacts and companies cannot be closed (422)."""
    ref = ItemRef(item_type, item_id)
    await _crm.close_item(session, ref, actor=await _actor(session, principal))
    await session.commit()
    return await item_out(item_type, await get_item(session, ref))
