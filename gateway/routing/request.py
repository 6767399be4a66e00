"""What the B2BUA asks routing, and how the answer comes back (now, or later from an async lookup)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.routing.decision import RouteDecision

#: (transport, host, port) of the INVITE's source.
Source = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """The facts of one inbound INVITE that routing may use; read once by the B2BUA, never re-parsed.

    `request_user`/`to_user`: the user parts of the Request-URI and of To (the dialled number is the
    first that names a gateway number). `caller_*`: From. `asserted`: the P-Asserted-Identity URI and
    `privacy` the Privacy header, when present (SPEC R6). `trusted`: the source is a configured trunk;
    `authenticated_user`: the digest user that authorised the INVITE (an employee's phone), if any.
    """

    call_id: str
    request_user: str | None
    to_user: str | None
    caller_uri: str
    caller_user: str | None
    caller_display: str | None
    asserted: str | None
    privacy: str | None
    source: Source
    trusted: bool
    authenticated_user: str | None
    at: float
    trunk_id: int | None = None
    called_party_user: str | None = None
    diversion_user: str | None = None


#: Called exactly once with the decision and the SIP clock's `now` at delivery.
Deliver = Callable[[RouteDecision, float], None]


class Router(Protocol):
    """Decides where a call goes. `route` returns at once; it calls `deliver` now (a decision that
    needs no I/O) or later from the SIP loop (after an async lookup; see `gateway.calls.router`)."""

    def route(self, request: RouteRequest, deliver: Deliver) -> None: ...
