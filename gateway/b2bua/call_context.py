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
    from gateway.routing.targets import Target as RouteTarget
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


class Party(NamedTuple):
    """Who is on one side of a call when it is an employee's phone: the employee (None when the
    gateway knows the extension only) and the extension they are rung on."""

    employee_id: int | None
    extension: str | None


class Awaited:
    """The purpose of a client transaction whose answer something other than the relay waits for
    (a transfer's re-INVITE): the controller hands it the answer."""

    __slots__ = ()

    def on_response(self, response: Response, now: float) -> None:
        """A response (provisional or final) to the transaction."""

    def on_failure(self, status: int, now: float) -> None:
        """No answer: a timeout (408) or a transport error (503)."""


# Finds the target of a blind transfer: the Refer-To user and the transferring employee → a routing
# target (an extension's employee, an outside number through a trunk), or None when there is none.
TransferTarget = Callable[[str, "int | None"], "RouteTarget | None"]


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

    def acknowledged_by_request(self, transaction: ServerTransaction, now: float) -> None:
        """The peer's request in the dialog of our 2xx to `transaction` shows it has the 2xx."""
        ...

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

    def unbind_dialog(self, leg: Leg) -> None:
        """Requests of `leg`'s dialog reach nobody any more (answered 481)."""
        ...

    def find_dialog(self, call_id: str, tags: tuple[str, str]) -> tuple[Any, int] | None:
        """The call and side of the gateway's dialog with Call-ID `call_id` whose local tag is one of
        `tags` (a Replaces header names both tags, from the other party's point of view)."""
        ...

    def release(self, call: Any) -> None: ...

    def trunk_credentials(self, trunk_id: int) -> tuple[str, str] | None:
        """The username and secret a trunk challenges our INVITEs for (SPEC R4), None when it has none."""
        ...

    # -- transfers (SPEC R5) ---------------------------------------------------------------
    transfer_ring_time: float  # how long a blind transfer's target, then its recall, rings

    def transfer_target(self, user: str, transferor: int | None) -> RouteTarget | None:
        """Where a blind transfer to `user` goes (see `TransferTarget`)."""
        ...

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Cancellable:
        """Call `callback(now)` once the clock reaches `deadline`."""
        ...
