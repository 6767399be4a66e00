"""The configuration pages: numbers (with each number's CRM-integration form), lead sources, queue groups,
employees, trunks, CRM settings with the exception list, and mailboxes.

Reads and writes go through the admin API (`call_api`), so T2 and every validation are the API's:
an employee without the manage-numbers right gets the settings read-only and no trunk at all.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from gateway.admin.deps import MAX_ID
from gateway.web.plumbing import Form, api_items, call_api, checked_form, render, signed_in
from gateway.web.sessions import WebSession
from gateway.web.words import WORDS

router = APIRouter()
Session = Annotated[WebSession, Depends(signed_in)]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def by_id(rows: list[dict[str, Any]] | None) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows or []}


@router.get("/")
async def home(session: Session) -> Response:
    return RedirectResponse("/ui/numbers", 303)


@router.get("/numbers")
async def numbers_page(request: Request, session: Session) -> Response:
    numbers = await api_items(request, session, "/numbers")
    groups = by_id(await api_items(request, session, "/queue-groups"))
    return render(request, "numbers.html", session, numbers=numbers, groups=groups)


async def _number_page(request: Request, session: WebSession, number_id: int, *, status_code: int = 200,
                       error: str | None = None, saved: bool = False) -> Response:
    answer = await call_api(request, session, "GET", f"/numbers/{number_id}")
    if not answer.ok:
        return render(request, "message.html", session, answer.status, message=answer.problem())
    trunks = await api_items(request, session, "/trunks") if session.may_manage_numbers else None
    return render(request, "number.html", session, status_code, number=answer.body,
                  groups=await api_items(request, session, "/queue-groups") or [],
                  sources=await api_items(request, session, "/sources") or [], trunks=trunks or [],
                  error=error, saved=saved)


@router.get("/numbers/{number_id}")
async def number_page(request: Request, session: Session, number_id: RowId, saved: bool = False) -> Response:
    return await _number_page(request, session, number_id, saved=saved)


def number_patch(form: Form) -> dict[str, Any]:
    """The number form as the admin API's PATCH /numbers body (empty selects remove the value)."""
    ring = form.get("responsible_ring_time_s")
    return {
        "unknown_caller_action": form.get("unknown_caller_action") or None,
        "create_for": form.get("create_for") or None,
        "source_id": form.optional_id("source_id"),
        "route_known_to_responsible": form.checked("route_known_to_responsible"),
        "responsible_ring_time_s": int(ring) if ring.isdigit() else ring or None,
        "change_responsible_on_transfer": form.checked("change_responsible_on_transfer"),
        "queue_group_id": form.optional_id("queue_group_id"),
        "trunk_id": form.optional_id("trunk_id"),
    }


@router.post("/numbers/{number_id}")
async def change_number(request: Request, session: Session, number_id: RowId) -> Response:
    form = await checked_form(request, session)
    answer = await call_api(request, session, "PATCH", f"/numbers/{number_id}", number_patch(form))
    if not answer.ok:
        return await _number_page(request, session, number_id, status_code=answer.status, error=answer.problem())
    return RedirectResponse(f"/ui/numbers/{number_id}?saved=true", 303)


@router.post("/sources")
async def add_source(request: Request, session: Session) -> Response:
    """T6: a custom lead source, then back to the number the form was on."""
    form = await checked_form(request, session)
    answer = await call_api(request, session, "POST", "/sources",
                            {"code": form.get("code"), "name": form.get("name")})
    back = form.optional_id("number_id")
    if not answer.ok:
        if back is not None:
            return await _number_page(request, session, back, status_code=answer.status, error=answer.problem())
        return render(request, "message.html", session, answer.status, message=answer.problem())
    return RedirectResponse(f"/ui/numbers/{back}" if back else "/ui/numbers", 303)


@router.get("/queues")
async def queues_page(request: Request, session: Session) -> Response:
    return render(request, "queues.html", session, groups=await api_items(request, session, "/queue-groups"),
                  employees=by_id(await api_items(request, session, "/employees")))


def devices_of(request: Request, extension: str | None) -> list[str]:
    """The phones registered under `extension` now, from the running gateway's registrar."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None or not extension:
        return []
    return list(gateway.registered_contacts(extension))


@router.get("/employees")
async def employees_page(request: Request, session: Session) -> Response:
    employees = await api_items(request, session, "/employees") or []
    devices = {e["id"]: devices_of(request, e["extension"]) for e in employees}
    return render(request, "employees.html", session, employees=employees, devices=devices)


@router.get("/trunks")
async def trunks_page(request: Request, session: Session) -> Response:
    trunks = await api_items(request, session, "/trunks")
    if trunks is None:
        return render(request, "message.html", session, 403, message=WORDS["needs_right"])
    return render(request, "trunks.html", session, trunks=trunks)


@router.get("/crm")
async def crm_page(request: Request, session: Session) -> Response:
    settings = await call_api(request, session, "GET", "/crm-settings")
    if not settings.ok:
        return render(request, "message.html", session, settings.status, message=WORDS["needs_admin"])
    return render(request, "crm.html", session, settings=settings.body,
                  exceptions=await api_items(request, session, "/exceptions") or [])


@router.get("/mailboxes")
async def mailboxes_page(request: Request, session: Session) -> Response:
    return render(request, "mailboxes.html", session, mailboxes=await api_items(request, session, "/mailboxes") or [],
                  groups=by_id(await api_items(request, session, "/queue-groups")),
                  sources=by_id(await api_items(request, session, "/sources")))
