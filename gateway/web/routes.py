"""The web pages' router under /ui and what the app needs to serve it (`install_web`).

    /ui/sign-in (GET, POST), /ui/sign-out (POST)
    /ui/numbers, /ui/numbers/{id} (GET, POST: the CRM-integration form), /ui/sources (POST)
    /ui/queues, /ui/employees, /ui/trunks, /ui/crm, /ui/mailboxes
    /ui/calls, /ui/calls/{id}, /ui/simulate (GET, POST)
    /ui/card, /ui/card/stream (SSE, session cookie), /ui/card/create, /ui/card/note (POST)
    /ui/static/{name}

None of it is in the OpenAPI schema: the pages are not API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from gateway.web import call_pages, card_page, config_pages, sessions, sign_in
from gateway.web.plumbing import SIGN_IN_PATH, CsrfRefused, SignInAgain, render
from gateway.web.words import WORDS

STATIC = Path(__file__).parent / "static"
_STATIC_FILES = {"app.css": "text/css", "card.js": "text/javascript"}

static_router = APIRouter()


@static_router.get("/static/{name}")
async def static_file(name: str) -> Response:
    if name not in _STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no static file {name!r}")
    return FileResponse(STATIC / name, media_type=_STATIC_FILES[name])


def web_router() -> APIRouter:
    """Every page of the web UI, under /ui."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    for part in (sign_in.router, config_pages.router, call_pages.router, card_page.router, static_router):
        router.include_router(part)
    return router


async def _sign_in_again(request: Request, exc: Exception) -> Response:
    done = RedirectResponse(f"{SIGN_IN_PATH}?message=again", status.HTTP_303_SEE_OTHER)
    sessions.clear_cookie(request, done, sessions.SESSION_COOKIE)
    return done


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return render(request, "message.html", sessions.current(request), status.HTTP_403_FORBIDDEN,
                  message=WORDS["csrf_refused"])


def install_web(app: FastAPI) -> None:
    """Serve the web pages on `app` (the admin app): their routes and error pages."""
    app.include_router(web_router())
    app.add_exception_handler(SignInAgain, _sign_in_again)
    app.add_exception_handler(CsrfRefused, _csrf_refused)

