"""/crm-settings, /exceptions: the CRM-wide configuration, admin-only (sources and pipelines: catalog.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminPrincipal
from gateway.admin.config_change import config_changed
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict
from gateway.admin.lookup import email_or_422, get_or_404, phone_or_422, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.crm import (
    CrmSettingsBody,
    CrmSettingsOut,
    ExceptionCreate,
    ExceptionOut,
)
from gateway.storage.models import CrmSettings, ExceptionEntry, Pipeline
from gateway.storage.models.settings import CRM_SETTINGS_ID

router = APIRouter(tags=["crm settings"])


async def _settings_row(session: AsyncSession) -> CrmSettings:
    row = await session.get(CrmSettings, CRM_SETTINGS_ID)
    if row is None:  # the migration seeds it; a hand-emptied table gets the defaults back
        row = CrmSettings(id=CRM_SETTINGS_ID)
        session.add(row)
        await session.flush()
    return row


@router.get("/crm-settings", response_model=CrmSettingsOut, summary="Read the CRM settings")
async def read_settings(session: SessionDep, admin: AdminPrincipal) -> CrmSettingsOut:
    """Admins only (T3, T12, M11, O1)."""
    return CrmSettingsOut.model_validate(await _settings_row(session))


@router.put("/crm-settings", response_model=CrmSettingsOut, summary="Replace the CRM settings")
async def write_settings(
    body: CrmSettingsBody, session: SessionDep, admin: AdminPrincipal, request: Request
) -> CrmSettingsOut:
    """Admins only. Every field is required: this replaces the whole settings row."""
    if body.deal_pipeline_id is not None:
        await referenced(session, Pipeline, body.deal_pipeline_id, "pipeline", "deal_pipeline_id")
    row = await _settings_row(session)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    await session.commit()
    await config_changed(request, "crm")
    return CrmSettingsOut.model_validate(row)


@router.get("/exceptions", response_model=Page[ExceptionOut], tags=["exception list"],
            summary="List the CRM exception list")
async def list_exceptions(session: SessionDep, page: PageDep, admin: AdminPrincipal) -> Page[ExceptionOut]:
    """Admins only (T8)."""
    total = await session.scalar(select(func.count()).select_from(ExceptionEntry)) or 0
    rows = await session.scalars(
        select(ExceptionEntry).order_by(ExceptionEntry.id).limit(page.limit).offset(page.offset))
    return Page(items=[ExceptionOut.model_validate(r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.post("/exceptions", response_model=ExceptionOut, status_code=status.HTTP_201_CREATED,
             tags=["exception list"], summary="Add a phone or email to the exception list")
async def create_exception(
    body: ExceptionCreate, session: SessionDep, admin: AdminPrincipal, request: Request
) -> ExceptionOut:
    """Admins only. The value is stored normalised (E.164 / O5) so every spelling of it matches."""
    if body.kind == "phone":
        normalized = phone_or_422(body.value, body.default_region, "value")
    else:
        normalized = email_or_422(body.value, "value")
    existing = await session.scalar(select(ExceptionEntry.id).where(
        ExceptionEntry.kind == body.kind, ExceptionEntry.normalized == normalized))
    if existing is not None:
        raise conflict(f"{normalized} is already on the exception list (entry {existing})")
    row = ExceptionEntry(kind=body.kind, value=body.value, normalized=normalized)
    session.add(row)
    await session.commit()
    await config_changed(request, "crm")
    return ExceptionOut.model_validate(row)


@router.get("/exceptions/{entry_id}", response_model=ExceptionOut, tags=["exception list"],
            summary="Read an exception list entry")
async def read_exception(entry_id: IdPath, session: SessionDep, admin: AdminPrincipal) -> ExceptionOut:
    """Admins only."""
    return ExceptionOut.model_validate(await get_or_404(session, ExceptionEntry, entry_id, "exception entry"))


@router.delete("/exceptions/{entry_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["exception list"],
               summary="Remove an exception list entry")
async def delete_exception(
    entry_id: IdPath, session: SessionDep, admin: AdminPrincipal, request: Request
) -> Response:
    """Admins only."""
    row = await get_or_404(session, ExceptionEntry, entry_id, "exception entry")
    await session.delete(row)
    await session.commit()
    await config_changed(request, "crm")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
