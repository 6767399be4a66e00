"""The call log (each call's decisions as sentences from its rule ids) and the simulate form.

The sentences are the admin API's own (`GET /calls/{id}`'s and `POST /simulate/call`'s `explanation`),
which the routing and linking engines write: nothing is re-decided here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from gateway.admin.deps import MAX_ID
from gateway.web.plumbing import Form, api_items, call_api, checked_form, render, signed_in
from gateway.web.sessions import WebSession
from gateway.web.words import WORDS

router = APIRouter()
Session = Annotated[WebSession, Depends(signed_in)]


@router.get("/calls")
async def calls_page(request: Request, session: Session) -> Response:
    calls = await api_items(request, session, "/calls")
    if calls is None:
        return render(request, "message.html", session, 403, message=WORDS["needs_right"])
    return render(request, "calls.html", session, calls=calls)


@router.get("/calls/{call_log_id}")
async def call_page(request: Request, session: Session,
                    call_log_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
    answer = await call_api(request, session, "GET", f"/calls/{call_log_id}")
    if not answer.ok:
        return render(request, "message.html", session, answer.status, message=answer.problem())
    return render(request, "call.html", session, call=answer.body)


def simulate_body(form: Form) -> dict[str, Any]:
    """The form as POST /simulate/call's body."""
    return {"number": form.get("number"), "from": form.get("from"), "direction": form.get("direction") or "inbound",
            "employee_id": form.optional_id("employee_id")}


@router.get("/simulate")
async def simulate_page(request: Request, session: Session) -> Response:
    if not session.may_manage_numbers:
        return render(request, "message.html", session, 403, message=WORDS["needs_right"])
    return render(request, "simulate.html", session, asked={"direction": "inbound"}, numbers=await _numbers(request, session))


async def _numbers(request: Request, session: WebSession) -> list[dict[str, Any]]:
    return await api_items(request, session, "/numbers") or []


@router.post("/simulate")
async def simulate(request: Request, session: Session) -> Response:
    form = await checked_form(request, session)
    body = simulate_body(form)
    answer = await call_api(request, session, "POST", "/simulate/call", body)
    numbers = await _numbers(request, session)
    if not answer.ok:
        return render(request, "simulate.html", session, answer.status, asked=body, numbers=numbers,
                      error=answer.problem())
    return render(request, "simulate.html", session, asked=body, numbers=numbers, plan=answer.body)
