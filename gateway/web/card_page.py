"""The call card page an employee keeps open (SPEC R8, T4b).

The page reads `/ui/card/stream` with the browser's EventSource: the session cookie authenticates it
(an EventSource cannot send a bearer header, and the page never sees the API token). That endpoint is
the admin API's own `GET /card/stream` handler, called with the session's employee, so it is the same
card hub, the same per-employee feed and the same `Last-Event-ID` replay. Creating a lead or contact
and writing a note post, with the session's CSRF token, to the admin API's /card endpoints.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from gateway.admin.auth import current_principal
from gateway.admin.deps import sessionmaker_of
from gateway.admin.routes import card
from gateway.web.plumbing import call_api, checked_form, render, signed_in
from gateway.web.sessions import WebSession
from gateway.web.words import WORDS

router = APIRouter()
Session = Annotated[WebSession, Depends(signed_in)]


@router.get("/card")
async def card_page(request: Request, session: Session) -> Response:
    # The script's words travel with the page, so a translation of words.py covers the card too.
    words = {key: value for key, value in WORDS.items() if key.startswith("card_")}
    return render(request, "card.html", session, card_words=words)


@router.get("/card/stream")
async def card_stream(request: Request, session: Session,
                      last_event_id: Annotated[str | None, Header(max_length=32)] = None) -> Response:
    async with sessionmaker_of(request)() as db:
        principal = await current_principal(db, HTTPAuthorizationCredentials(scheme="Bearer",
                                                                              credentials=session.token))
        return await card.card_stream(request, db, principal, last_event_id)


async def _card_action(request: Request, session: WebSession, path: str, body: dict[str, str]) -> Response:
    answer = await call_api(request, session, "POST", path, body)
    return JSONResponse(answer.body, status_code=answer.status) if answer.ok else JSONResponse(
        {"detail": answer.problem()}, status_code=answer.status)


@router.post("/card/create")
async def create_from_card(request: Request, session: Session) -> Response:
    """T4b: the card's *create lead* / *create contact* (the admin API decides if it may)."""
    form = await checked_form(request, session)
    return await _card_action(request, session, "/card/create",
                              {"call_id": form.get("call_id"), "type": form.get("type")})


@router.post("/card/note")
async def note_on_card(request: Request, session: Session) -> Response:
    form = await checked_form(request, session)
    return await _card_action(request, session, "/card/note", {"call_id": form.get("call_id"), "text": form.get("text")})
