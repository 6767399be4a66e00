"""Web sessions: an API token exchanged for a session cookie, and each session's CSRF token.

Sessions live in the gateway's memory (a restart signs everybody out; one gateway process serves the
admin port, so nothing needs sharing). The session keeps the employee's API token server-side: the
pages call the admin API with it, so the API's rights apply unchanged, and revoking the token ends the
session at its next request. The browser holds only a random session id (HttpOnly, SameSite=Strict,
Secure on https or when `app.state.web_secure_cookies` says so).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Response

SESSION_COOKIE = "gw_session"
#: Before sign-in there is no session: the sign-in form's CSRF token is a double-submit cookie.
SIGN_IN_COOKIE = "gw_sign_in"
COOKIE_PATH = "/ui"
IDLE_S = 8 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class WebSession:
    """One signed-in browser."""

    token: str
    csrf: str
    employee_id: int
    name: str
    is_admin: bool
    can_manage_numbers: bool
    last_seen: float

    @property
    def may_manage_numbers(self) -> bool:
        """T2: administrators and holders of the manage-numbers right."""
        return self.is_admin or self.can_manage_numbers


class SessionStore:
    """Sessions by id, oldest first; idle ones expire, and at most `cap` are kept."""

    def __init__(self, idle_s: float = IDLE_S, cap: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s, self.cap, self.clock = idle_s, cap, clock
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()

    def start(self, token: str, employee_id: int, name: str, is_admin: bool, can_manage_numbers: bool) -> str:
        """A new session; returns its id (the cookie's value)."""
        while len(self._sessions) >= self.cap:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = WebSession(token, secrets.token_urlsafe(32), employee_id, name, is_admin,
                                                can_manage_numbers, self.clock())
        return session_id

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session of that id, its idle timer restarted; None if unknown or expired."""
        if not session_id:
            return None
        found = self._sessions.get(session_id)
        if found is None:
            return None
        now = self.clock()
        if now - found.last_seen > self.idle_s:
            del self._sessions[session_id]
            return None
        found.last_seen = now
        self._sessions.move_to_end(session_id)
        return found

    def end(self, session_id: str | None) -> None:
        """Sign-out: the id no longer names a session."""
        if session_id:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


def store_of(request: Request) -> SessionStore:
    """The app's session store, made on first use."""
    store = getattr(request.app.state, "web_sessions", None)
    if store is None:
        store = request.app.state.web_sessions = SessionStore()
    return store


def current(request: Request) -> WebSession | None:
    """The session of the request's cookie, if it is still live."""
    return store_of(request).get(request.cookies.get(SESSION_COOKIE))


def secure_cookies(request: Request) -> bool:
    """Secure cookies on https; on plain http only when configured (a loopback admin port has no TLS)."""
    configured = getattr(request.app.state, "web_secure_cookies", None)
    return bool(configured) if configured is not None else request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=secure_cookies(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=secure_cookies(request))


def same_token(expected: str | None, given: str | None) -> bool:
    """CSRF check in constant time; a missing token on either side never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
