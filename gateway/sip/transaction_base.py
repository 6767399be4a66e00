"""What every RFC 3261 §17 transaction shares: states, the table-driven core, matching keys.

Each transaction is driven by a table mapping ``(state, input)`` to ``(next state, actions)``.
Inputs are response classes (``"1xx"``, ``"2xx"``, ``"final"`` for 300-699), TU sends
(``"tu_1xx"``, ``"tu_2xx"``, ``"tu_final"``), ``"request"`` (a retransmission), ``"ack"``,
``"transport_error"`` (the transport could not send, §17.1.4) and timer names A–M. A pair
missing from a table is absorbed: that is how the RFC's "discard" rules read here. Transactions
own no clock and no socket: they ask their `TransactionHost`.

A transaction whose outcome is settled lingers (Timers D, I, J, K, L, M: up to 64*T1) only to
absorb or answer retransmissions. It then *lingers slim*: it drops its request and response
objects and keeps the bytes it may resend, because at hundreds of calls/s those parsed messages
were most of the objects the garbage collector walked.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from gateway.sip.errors import LocalProtocolError
from gateway.sip.events import Target
from gateway.sip.message import Request, Response
from gateway.sip.timers import TimerHandle, TimerQueue, TimerSettings

if TYPE_CHECKING:
    from gateway.sip.events import Event

MAGIC_COOKIE = "z9hG4bK"


class State(StrEnum):
    """Transaction states of RFC 3261 §17 figures 5–8 and RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


CALLING, TRYING, PROCEEDING = State.CALLING, State.TRYING, State.PROCEEDING
COMPLETED, CONFIRMED, ACCEPTED, TERMINATED = State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED


class TransactionHost(Protocol):
    """What a transaction needs from its endpoint."""

    timers: TimerQueue
    settings: TimerSettings
    stats: dict[str, int]

    def transmit(self, data: bytes, target: Target) -> None: ...

    def emit(self, event: Event) -> None: ...

    def transaction_ended(self, transaction: TransactionBase) -> None: ...


Action = Callable[["TransactionBase", "Request | Response | None", float], None]
Table = dict[tuple[State, str], tuple[State, tuple[Action, ...]]]


class TransactionBase:
    """Table-driven core shared by client and server transactions."""

    __slots__ = ("key", "_request", "method", "is_invite", "reliable", "state", "_host", "_table",
                 "_retx_timer", "_end_timer", "_interval", "_ended")

    def __init__(self, key: tuple[str, ...], request: Request, reliable: bool, host: TransactionHost,
                 table: Table, state: State) -> None:
        self.key = key
        self._request: Request | None = request
        self.method = request.method
        self.is_invite = request.method == "INVITE"
        self.reliable = reliable
        self.state = state
        self._host = host
        self._table = table
        self._retx_timer: TimerHandle | None = None
        self._end_timer: TimerHandle | None = None
        self._interval = host.settings.t1
        self._ended = False

    @property
    def branch(self) -> str:
        return self.key[0]

    @property
    def request(self) -> Request:
        """The request that opened the transaction; LocalProtocolError once it lingers slim."""
        request = self._request
        if request is None:
            raise LocalProtocolError(f"{self!r} lingers for retransmissions only and no longer keeps its request")
        return request

    @property
    def lingering(self) -> bool:
        """True once only retransmissions are left: request and responses dropped, bytes kept."""
        return self._request is None

    def _linger(self) -> None:
        self._request = None

    def _input(self, name: str, message: Request | Response | None, now: float) -> bool:
        transition = self._table.get((self.state, name))
        if transition is None:
            return False
        # The state changes before the actions run, so an action that fires a zero-length
        # timer (reliable transports) moves on from the new state.
        self.state = transition[0]
        for action in transition[1]:
            action(self, message, now)
        if self.state is TERMINATED and not self._ended:
            self._end()
        return True

    def _on_timer(self, name: str, now: float) -> None:
        self._input(name, None, now)

    def _arm_retx(self, name: str, delay: float, now: float) -> None:
        self._retx_timer = self._host.timers.schedule(now + delay, name, self._on_timer)

    def _arm_end(self, name: str, delay: float, now: float) -> None:
        if delay <= 0:
            self._input(name, None, now)
        else:
            self._end_timer = self._host.timers.schedule(now + delay, name, self._on_timer)

    def _stop_timers(self) -> None:
        if self._retx_timer is not None:
            self._retx_timer.cancel()
            self._retx_timer = None
        if self._end_timer is not None:
            self._end_timer.cancel()
            self._end_timer = None

    def _end(self) -> None:
        self._ended = True
        self.state = TERMINATED
        self._stop_timers()
        self._host.transaction_ended(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.key[0]} {self.state.value}>"


def stop_timers(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._stop_timers()


def linger(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    """The outcome is settled: keep only what answering a retransmission needs."""
    txn._linger()


# -- matching (§17.1.3, §17.2.3) ------------------------------------------------------------
def client_key(message: Request | Response) -> tuple[str, ...]:
    """Client matching key (§17.1.3): top Via branch and CSeq method."""
    return (message.top_via.branch or "", message.cseq[1])


def server_key(request: Request, method: str | None = None) -> tuple[str, ...]:
    """Server matching key (§17.2.3): branch, sent-by and method, ACK folded onto INVITE.

    Requests without the RFC 3261 magic cookie fall back to the RFC 2543 identity
    (Call-ID, From tag, CSeq number, top Via).
    """
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host, str(via.port or 5060), method)
    return ("rfc2543", request.call_id, request.from_tag or "", str(request.cseq[0]),
            f"{via.host}:{via.port}", method)
