"""What every page handler shares: the signed-in session, CSRF-checked forms, in-process admin API calls
with the employee's own token, and rendering a template with the words of `gateway.web.words`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gateway.web import sessions
from gateway.web.sessions import WebSession
from gateway.web.words import CHOICES, WORDS, choice

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals.update(w=WORDS, choices=CHOICES, choice=choice)
#: A form is a few fields; a bigger body is refused before it is parsed.
MAX_FORM_BYTES = 64 * 1024
SIGN_IN_PATH = "/ui/sign-in"
PAGE_HEADERS = {
    # Scripts and styles come from the gateway only: no inline script, no CDN.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInAgain(Exception):
    """No live session (or its token stopped working): the browser goes to the sign-in page."""


class CsrfRefused(Exception):
    """A form came without this session's CSRF token."""


def signed_in(request: Request) -> WebSession:
    """The request's session (a FastAPI dependency); otherwise to the sign-in page."""
    found = sessions.current(request)
    if found is None:
        raise SignInAgain()
    return found


@dataclass(frozen=True)
class Form:
    """A posted form's fields (the last value of each, or all of them with `all`)."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1].strip() if values else default

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self.fields.get(name, [])]

    def checked(self, name: str) -> bool:
        return name in self.fields

    def optional_id(self, name: str) -> int | None:
        value = self.get(name)
        return int(value) if value.isdigit() else None


async def read_form(request: Request) -> Form:
    """The urlencoded body of the request; no fields when it is not a form (so it carries no CSRF token)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return Form({})
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail="this form is too big")
    return Form(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))


async def checked_form(request: Request, session: WebSession) -> Form:
    """The posted form, once its CSRF token matched the session's (CsrfRefused otherwise)."""
    form = await read_form(request)
    if not sessions.same_token(session.csrf, form.get("csrf") or request.headers.get("x-csrf-token")):
        raise CsrfRefused()
    return form


@dataclass(frozen=True)
class ApiAnswer:
    """What the admin API answered to an in-process call."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def problem(self) -> str:
        """The API's message saying what to fix, one line per field error."""
        detail = self.body.get("detail") if isinstance(self.body, dict) else self.body
        if isinstance(detail, list):
            return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in detail)
        return str(detail)


async def api_as(request: Request, token: str, method: str, path: str, body: Any = None,
                 params: dict[str, Any] | None = None) -> ApiAnswer:
    """The admin API of this very app, called in-process with `token` (the same rules as over HTTP)."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin-api") as client:
        answer = await client.request(method, path, json=body, params=params,
                                      headers={"authorization": f"Bearer {token}"})
    return ApiAnswer(answer.status_code, answer.json() if answer.content else None)


async def call_api(request: Request, session: WebSession, method: str, path: str, body: Any = None,
                   params: dict[str, Any] | None = None) -> ApiAnswer:
    """`api_as` the signed-in employee; a token revoked meanwhile ends the session (SignInAgain)."""
    answer = await api_as(request, session.token, method, path, body, params)
    if answer.status == status.HTTP_401_UNAUTHORIZED:
        sessions.store_of(request).end(request.cookies.get(sessions.SESSION_COOKIE))
        raise SignInAgain()
    return answer


async def api_items(request: Request, session: WebSession, path: str) -> list[dict[str, Any]] | None:
    """The first page (200 rows) of a list endpoint; None when the employee may not read it (403)."""
    answer = await call_api(request, session, "GET", path, params={"limit": 200})
    if answer.status == status.HTTP_403_FORBIDDEN:
        return None
    if not answer.ok:
        raise HTTPException(answer.status, detail=answer.problem())
    items = answer.body["items"] if isinstance(answer.body, dict) and "items" in answer.body else answer.body
    return list(items)


def render(request: Request, template: str, session: WebSession | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """A page; every page gets the session (for the menu and the CSRF field)."""
    return TEMPLATES.TemplateResponse(request, template, {"session": session, **context},
                                      status_code=status_code, headers=PAGE_HEADERS)
