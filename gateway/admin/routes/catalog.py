"""/sources and /pipelines: lead sources (SPEC T6: the standard ones and custom ones) and deal pipelines
(T12: the CRM mode settings select one; exactly one is the default).

Every employee may read them. Sources are changed by admins and number managers (a number's source is
one of its CRM-integration settings, T2); pipelines by admins only (like the CRM mode settings). A
standard source and the default pipeline cannot be deleted; neither can one still in use (409 naming
who uses it).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import ColumnElement

from gateway.admin.auth import AdminPrincipal, CurrentPrincipal, NumberManager
from gateway.admin.config_change import config_changed
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import changes, get_or_404
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.crm import (
    PipelineCreate,
    PipelineOut,
    PipelineUpdate,
    SourceCreate,
    SourceOut,
    SourceUpdate,
)
from gateway.storage.models import Company, Contact, CrmSettings, Deal, Lead, Number, Pipeline, Source

router = APIRouter(tags=["catalog"])
_SHOWN = 10  # ids named in a 409 before "and N more"


def _listed(kind: str, ids: list[int]) -> str:
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return f"{kind} {', '.join(map(str, ids[:_SHOWN]))}{more}"


async def _ids(session: AsyncSession, column: InstrumentedAttribute[int], where: ColumnElement[bool]) -> list[int]:
    return list(await session.scalars(select(column).where(where).order_by(column)))


# ---- sources (T6) ---------------------------------------------------------------------------------

async def _check_code_free(session: AsyncSession, code: str, source_id: int | None) -> None:
    other = await session.scalar(select(Source.id).where(Source.code == code))
    if other is not None and other != source_id:
        raise conflict(f"a source with code {code!r} already exists (id {other}); choose another code")


async def _source_users(session: AsyncSession, source_id: int) -> list[str]:
    users = []
    for kind, model in (("number(s)", Number), ("lead(s)", Lead), ("contact(s)", Contact),
                        ("company(ies)", Company), ("deal(s)", Deal)):
        ids = await _ids(session, model.id, model.source_id == source_id)
        if ids:
            users.append(_listed(kind, ids))
    return users


@router.get("/sources", response_model=Page[SourceOut], summary="List lead sources")
async def list_sources(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[SourceOut]:
    """Every employee (T6)."""
    total = await session.scalar(select(func.count()).select_from(Source)) or 0
    rows = await session.scalars(select(Source).order_by(Source.id).limit(page.limit).offset(page.offset))
    return Page(items=[SourceOut.model_validate(r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.post("/sources", response_model=SourceOut, status_code=status.HTTP_201_CREATED,
             summary="Create a custom lead source")
async def create_source(body: SourceCreate, session: SessionDep, manager: NumberManager,
                        request: Request) -> SourceOut:
    """Admins and number managers. 409 when the code is taken."""
    await _check_code_free(session, body.code, None)
    row = Source(code=body.code, name=body.name, standard=False)
    session.add(row)
    await session.commit()
    await config_changed(request, "crm")
    return SourceOut.model_validate(row)


@router.get("/sources/{source_id}", response_model=SourceOut, summary="Read a lead source")
async def read_source(source_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> SourceOut:
    """Every employee."""
    return SourceOut.model_validate(await get_or_404(session, Source, source_id, "source"))


@router.patch("/sources/{source_id}", response_model=SourceOut, summary="Rename a lead source")
async def update_source(source_id: IdPath, body: SourceUpdate, session: SessionDep, manager: NumberManager,
                        request: Request) -> SourceOut:
    """Admins and number managers. A standard source's code cannot change (422)."""
    row = await get_or_404(session, Source, source_id, "source")
    patch = changes(body)
    if patch.get("code") is not None and patch["code"] != row.code:
        if row.standard:
            raise invalid(f"code: {row.code} is a standard source; its code cannot change (its name can)")
        await _check_code_free(session, patch["code"], row.id)
        row.code = patch["code"]
    if patch.get("name") is not None:
        row.name = patch["name"]
    await session.commit()
    await config_changed(request, "crm")
    return SourceOut.model_validate(row)


@router.delete("/sources/{source_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a custom source")
async def delete_source(source_id: IdPath, session: SessionDep, manager: NumberManager,
                        request: Request) -> Response:
    """Admins and number managers. 409 for a standard source, and for one that numbers or items use."""
    row = await get_or_404(session, Source, source_id, "source")
    if row.standard:
        raise conflict(f"source {row.id} ({row.code}) is a standard source (T6) and cannot be deleted")
    users = await _source_users(session, row.id)
    if users:
        raise conflict(f"source {row.id} ({row.code}) is used by {'; '.join(users)}; give those numbers another "
                       "source_id (PATCH /numbers/{id}); a source that items carry stays, deleting it would "
                       "empty their Source field")
    await session.delete(row)
    await session.commit()
    await config_changed(request, "crm")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- pipelines (T12) ------------------------------------------------------------------------------

async def _check_name_free(session: AsyncSession, name: str, pipeline_id: int | None) -> None:
    other = await session.scalar(select(Pipeline.id).where(Pipeline.name == name))
    if other is not None and other != pipeline_id:
        raise conflict(f"a pipeline named {name!r} already exists (id {other}); choose another name")


async def _make_default(session: AsyncSession, row: Pipeline) -> None:
    """`row` becomes the one default pipeline."""
    await session.execute(update(Pipeline).where(Pipeline.id != row.id).values(is_default=False)
                          .execution_options(synchronize_session="fetch"))
    row.is_default = True


@router.get("/pipelines", response_model=Page[PipelineOut], summary="List deal pipelines")
async def list_pipelines(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[PipelineOut]:
    """Every employee (T12)."""
    total = await session.scalar(select(func.count()).select_from(Pipeline)) or 0
    rows = await session.scalars(select(Pipeline).order_by(Pipeline.id).limit(page.limit).offset(page.offset))
    return Page(items=[PipelineOut.model_validate(r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.post("/pipelines", response_model=PipelineOut, status_code=status.HTTP_201_CREATED,
             summary="Create a deal pipeline")
async def create_pipeline(body: PipelineCreate, session: SessionDep, admin: AdminPrincipal,
                          request: Request) -> PipelineOut:
    """Admins only. 409 when the name is taken."""
    await _check_name_free(session, body.name, None)
    row = Pipeline(name=body.name, is_default=False)
    session.add(row)
    await session.flush()
    if body.is_default:
        await _make_default(session, row)
    await session.commit()
    await config_changed(request, "crm")
    return PipelineOut.model_validate(row)


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut, summary="Read a deal pipeline")
async def read_pipeline(pipeline_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> PipelineOut:
    """Every employee."""
    return PipelineOut.model_validate(await get_or_404(session, Pipeline, pipeline_id, "pipeline"))


@router.patch("/pipelines/{pipeline_id}", response_model=PipelineOut, summary="Rename a pipeline or make it the default")
async def update_pipeline(pipeline_id: IdPath, body: PipelineUpdate, session: SessionDep, admin: AdminPrincipal,
                          request: Request) -> PipelineOut:
    """Admins only. `is_default: false` on the default is a 422: make another pipeline the default."""
    row = await get_or_404(session, Pipeline, pipeline_id, "pipeline")
    patch = changes(body)
    if patch.get("name") is not None:
        await _check_name_free(session, patch["name"], row.id)
        row.name = patch["name"]
    if patch.get("is_default") is True and not row.is_default:
        await _make_default(session, row)
    elif patch.get("is_default") is False and row.is_default:
        raise invalid(f"is_default: pipeline {row.id} ({row.name}) is the default; there is always one "
                      "default, so make another pipeline the default (PATCH it with is_default: true)")
    await session.commit()
    await config_changed(request, "crm")
    return PipelineOut.model_validate(row)


@router.delete("/pipelines/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a pipeline")
async def delete_pipeline(pipeline_id: IdPath, session: SessionDep, admin: AdminPrincipal,
                          request: Request) -> Response:
    """Admins only. 409 for the default pipeline, and for one that deals or the CRM settings use."""
    row = await get_or_404(session, Pipeline, pipeline_id, "pipeline")
    if row.is_default:
        raise conflict(f"pipeline {row.id} ({row.name}) is the default pipeline (T12) and cannot be deleted; "
                       "make another pipeline the default first")
    users = []
    if await session.scalar(select(CrmSettings.id).where(CrmSettings.deal_pipeline_id == row.id)) is not None:
        users.append("the CRM settings (deal_pipeline_id; PUT /crm-settings)")
    deals = await _ids(session, Deal.id, Deal.pipeline_id == row.id)
    if deals:
        users.append(_listed("deal(s)", deals))
    if users:
        raise conflict(f"pipeline {row.id} ({row.name}) is used by {'; '.join(users)}")
    await session.delete(row)
    await session.commit()
    await config_changed(request, "crm")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
