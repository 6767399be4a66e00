"""What the B2BUA needs from the world around it: the endpoint it drives, the owners of requests that
belong to no call (an outbound registration), and what it asks about the database's trunks."""

from __future__ import annotations

from typing import Protocol

from gateway.sip.events import Target
from gateway.sip.message import Request, Response
from gateway.sip.timers import TimerQueue


class SipPort:
    """The subset of `gateway.sip.endpoint.SipEndpoint` the B2BUA drives (for typing)."""

    timers: TimerQueue

    def send_request(self, request: Request, target: Target, now: float) -> object: ...

    def send_response(self, transaction: object, response: Response, now: float) -> None: ...

    def send_stateless(self, message: Request | Response, target: Target) -> None: ...

    def acknowledged_by_request(self, transaction: object, now: float) -> None: ...

    def cancel(self, invite: object, now: float) -> object: ...

    def new_tag(self) -> str: ...

    def new_call_id(self) -> str: ...


class ClientOwner(Protocol):
    """Something other than a call that sends requests through the B2BUA's endpoint (an outbound
    registration to a provider): the answers to its transactions reach it, not a call."""

    def on_response(self, transaction: object, response: Response, source: Target, now: float) -> None:
        """A response to `transaction`, from `source` (transport, host, port)."""

    def on_no_answer(self, transaction: object, status: int, now: float) -> None:
        """No final answer: Timer B/F (408) or a transport error (503)."""


class TrunkSide:
    """What the B2BUA asks about the database's trunks (SPEC T1); this default knows none.

    `by_source(host, port)`: the trunk an INVITE from there comes from (trusted by its address or by
    our registration to it); `by_login(username)`: the trunk whose credentials a digest-authenticated
    INVITE used (a PBX); `credentials(trunk_id)`: what we answer a trunk's challenge with.
    """

    def by_source(self, host: str, port: int) -> int | None:
        return None

    def by_login(self, username: str) -> int | None:
        return None

    def credentials(self, trunk_id: int) -> tuple[str, str] | None:
        return None
