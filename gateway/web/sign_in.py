"""/ui/sign-in and /ui/sign-out: an API token in, a session cookie out; sign-out ends the session."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response

from gateway.web import sessions
from gateway.web.plumbing import CsrfRefused, api_as, checked_form, read_form, render, signed_in
from gateway.web.words import WORDS

router = APIRouter()


@router.get("/sign-in")
async def sign_in_page(request: Request, message: str | None = None) -> Response:
    """The sign-in form with a fresh double-submit CSRF token (there is no session yet to hold one)."""
    token = secrets.token_urlsafe(32)
    known = {"out": WORDS["signed_out"], "again": WORDS["session_over"]}
    page = render(request, "sign_in.html", None, csrf=token, message=known.get(message or ""))
    sessions.set_cookie(request, page, sessions.SIGN_IN_COOKIE, token)
    return page


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    if not sessions.same_token(request.cookies.get(sessions.SIGN_IN_COOKIE), form.get("csrf")):
        raise CsrfRefused()
    token = form.get("token")
    who = await api_as(request, token, "GET", "/me") if token else None
    if who is None or not who.ok:
        fresh = secrets.token_urlsafe(32)
        page = render(request, "sign_in.html", None, status.HTTP_401_UNAUTHORIZED, csrf=fresh,
                      error=WORDS["bad_token"])
        sessions.set_cookie(request, page, sessions.SIGN_IN_COOKIE, fresh)
        return page
    me = who.body
    session_id = sessions.store_of(request).start(token, me["employee_id"], me["name"], me["is_admin"],
                                                  me["can_manage_numbers"])
    done = RedirectResponse("/ui/", status.HTTP_303_SEE_OTHER)
    sessions.set_cookie(request, done, sessions.SESSION_COOKIE, session_id)
    sessions.clear_cookie(request, done, sessions.SIGN_IN_COOKIE)
    return done


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Ends the session server-side: the old cookie names nothing any more."""
    await checked_form(request, signed_in(request))
    sessions.store_of(request).end(request.cookies.get(sessions.SESSION_COOKIE))
    done = RedirectResponse("/ui/sign-in?message=out", status.HTTP_303_SEE_OTHER)
    sessions.clear_cookie(request, done, sessions.SESSION_COOKIE)
    return done
