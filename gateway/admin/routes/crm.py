"""/crm-settings, /exceptions, /sources, /pipelines: the CRM-wide configuration.

CRM settings and the exception list are admin-only to change; sources and pipelines are read-only
here (the migration seeds them) and readable by every employee.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminPrincipal, CurrentPrincipal
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict
from gateway.admin.lookup import email_or_422, get_or_404, phone_or_422, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.crm import (
    CrmSettingsBody,
    CrmSettingsOut,
    ExceptionCreate,
    ExceptionOut,
    PipelineOut,
    SourceOut,
)
from gateway.storage.models import CrmSettings, ExceptionEntry, Pipeline, Source
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
async def write_settings(body: CrmSettingsBody, session: SessionDep, admin: AdminPrincipal) -> CrmSettingsOut:
    """Admins only. Every field is required: this replaces the whole settings row."""
    if body.deal_pipeline_id is not None:
        await referenced(session, Pipeline, body.deal_pipeline_id, "pipeline", "deal_pipeline_id")
    row = await _settings_row(session)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    await session.commit()
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
async def create_exception(body: ExceptionCreate, session: SessionDep, admin: AdminPrincipal) -> ExceptionOut:
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
    return ExceptionOut.model_validate(row)


@router.get("/exceptions/{entry_id}", response_model=ExceptionOut, tags=["exception list"],
            summary="Read an exception list entry")
async def read_exception(entry_id: IdPath, session: SessionDep, admin: AdminPrincipal) -> ExceptionOut:
    """Admins only."""
    return ExceptionOut.model_validate(await get_or_404(session, ExceptionEntry, entry_id, "exception entry"))


@router.delete("/exceptions/{entry_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["exception list"],
               summary="Remove an exception list entry")
async def delete_exception(entry_id: IdPath, session: SessionDep, admin: AdminPrincipal) -> Response:
    """Admins only."""
    row = await get_or_404(session, ExceptionEntry, entry_id, "exception entry")
    await session.delete(row)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sources", response_model=Page[SourceOut], tags=["catalog"], summary="List lead sources")
async def list_sources(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[SourceOut]:
    """Every employee (T6)."""
    total = await session.scalar(select(func.count()).select_from(Source)) or 0
    rows = await session.scalars(select(Source).order_by(Source.id).limit(page.limit).offset(page.offset))
    return Page(items=[SourceOut.model_validate(r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.get("/sources/{source_id}", response_model=SourceOut, tags=["catalog"], summary="Read a lead source")
async def read_source(source_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> SourceOut:
    """Every employee."""
    return SourceOut.model_validate(await get_or_404(session, Source, source_id, "source"))


@router.get("/pipelines", response_model=Page[PipelineOut], tags=["catalog"], summary="List deal pipelines")
async def list_pipelines(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[PipelineOut]:
    """Every employee (T12)."""
    total = await session.scalar(select(func.count()).select_from(Pipeline)) or 0
    rows = await session.scalars(select(Pipeline).order_by(Pipeline.id).limit(page.limit).offset(page.offset))
    return Page(items=[PipelineOut.model_validate(r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut, tags=["catalog"],
            summary="Read a deal pipeline")
async def read_pipeline(pipeline_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> PipelineOut:
    """Every employee."""
    return PipelineOut.model_validate(await get_or_404(session, Pipeline, pipeline_id, "pipeline"))
