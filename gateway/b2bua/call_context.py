"""What a `Call` stands on: its states, the sides of the bridge and what it needs from the controller."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from gateway.sip.message import Request, Response

if TYPE_CHECKING:
    from gateway.b2bua.leg import Leg
    from gateway.b2bua.observer import CallObserver
    from gateway.b2bua.session_timer import SessionTimerPolicy
    from gateway.sip.transaction import ClientTransaction, ServerTransaction

Target = tuple[str, str, int]
A, B = 0, 1  # the sides of a call: leg A (the caller's, we are its UAS), leg B (we are its UAC)
# The purpose of a transaction whose answer changes nothing (a BYE ending a dialog nobody uses).
ABSORB = "absorb"


class Destination(NamedTuple):
    """Where a routing target is called: the Request-URI, the transport and the next hop.

    `flow_host` is set when `hop` is the flow of the callee's registration rather than its Contact
    (see `gateway.b2bua.flows`): the host its Contact named, which the leg keeps the flow for.
    """

    uri: str
    transport: str
    hop: Target
    flow_host: str | None = None


class Cancellable(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None: ...


class CallState(Enum):
    """Where a call is; the names follow leg A's point of view.

    ROUTING → CALLING (routing decided: hunting) | ENDED (rejected, or the caller cancelled)
    CALLING → ANSWERED (a 2xx relayed to A) | CANCELLING (A's CANCEL or early BYE) | ENDED (failed)
    ANSWERED → CONFIRMED (A's ACK) | HUNG_UP (B's BYE before A's ACK) | ENDED
    CANCELLING → ENDED (every leg B settled); CONFIRMED, HUNG_UP → ENDED
    """

    ROUTING = "routing"  # the Call exists, waiting for the router's decision; no leg B yet
    CALLING = "calling"  # INVITE sent on leg B, no answer yet
    ANSWERED = "answered"  # 2xx relayed to A, waiting for A's ACK
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"  # A gave up; waiting for B's final answer to the CANCEL
    HUNG_UP = "hung up"  # B hung up before A's ACK; A's BYE waits for that ACK (§15)
    ENDED = "ended"


class CallContext(Protocol):
    """What a call needs from the controller: sending, indexes and observers.

    The `call` the indexes take is the `gateway.b2bua.call.Call` (typed Any: this module stays below
    `call`, `hunt` and `dialog_relay`, which all stand on it).
    """

    observer: CallObserver
    session_timers: SessionTimerPolicy
    max_call_seconds: float  # 0: no limit

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None: ...

    def request(self, request: Request, target: Target, now: float) -> ClientTransaction | None: ...

    def stateless(self, message: Request, target: Target) -> None: ...

    def cancel(self, transaction: ClientTransaction, now: float) -> None: ...

    def contact_for(self, transport: str) -> str: ...

    def new_tag(self) -> str: ...

    def new_call_id(self) -> str: ...

    def resolve(self, target: str, callee: str) -> Destination:
        """Where to send the INVITE for a routing target and the dialled user."""
        ...

    def flow_open(self, target: Target) -> bool:
        """Whether the stream connection to `target` is still open (a flow a leg may keep using)."""
        ...

    def registered(self, user: str, now: float) -> list[str]:
        """The Contact URIs registered for `user` now, most recent first."""
        ...

    def engaged(self, employee_id: int, calls: int) -> None:
        """An employee's phone entered (+1) or left (-1) an answered call."""
        ...

    def bind_transaction(self, transaction: ClientTransaction, call: Any, purpose: object) -> None: ...

    def bind_dialog(self, leg: Leg, call: Any, side: int) -> None: ...

    def release(self, call: Any) -> None: ...

    def trunk_credentials(self, trunk_id: int) -> tuple[str, str] | None:
        """The username and secret a trunk challenges our INVITEs for (SPEC R4), None when it has none."""
        ...

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Cancellable:
        """Call `callback(now)` once the clock reaches `deadline`."""
        ...
