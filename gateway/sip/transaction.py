"""RFC 3261 §17 client and server transactions as transition tables (RFC 6026 for 2xx).

The table-driven core, states and matching keys are in `transaction_base`; this module holds
the four tables (INVITE/non-INVITE × client/server) and their actions.
"""

from __future__ import annotations

from gateway.sip.errors import LocalProtocolError
from gateway.sip.events import AckNotReceived, ResponseReceived, Target, TransactionTimedOut, TransportFailed
from gateway.sip.message import Request, Response
from gateway.sip.transaction_base import (
    ACCEPTED,
    CALLING,
    COMPLETED,
    CONFIRMED,
    MAGIC_COOKIE,
    PROCEEDING,
    TERMINATED,
    TRYING,
    State,
    Table,
    TransactionBase,
    TransactionHost,
    client_key,
    linger,
    server_key,
    stop_timers,
)

__all__ = [
    "MAGIC_COOKIE", "ClientTransaction", "ServerTransaction", "State", "TransactionHost",
    "build_non2xx_ack", "client_key", "server_key",
]


# -- client transactions (§17.1) ------------------------------------------------------------
class ClientTransaction(TransactionBase):
    """An INVITE (§17.1.1) or non-INVITE (§17.1.2) client transaction."""

    __slots__ = ("target", "last_response", "cancel_transaction", "_data", "_ack_data", "_started")

    def __init__(self, key: tuple[str, ...], request: Request, target: Target, host: TransactionHost,
                 data: bytes) -> None:
        invite = request.method == "INVITE"
        super().__init__(key, request, target[0] != "udp", host,
                         _INVITE_CLIENT if invite else _NON_INVITE_CLIENT, CALLING if invite else TRYING)
        self.target = target
        self.last_response: Response | None = None
        self.cancel_transaction: ClientTransaction | None = None
        self._data = data
        self._ack_data: bytes | None = None
        self._started = False

    def start(self, now: float) -> None:
        """Send the request and arm Timer A/B (INVITE) or E/F (non-INVITE)."""
        if self._started:
            return
        self._started = True
        host = self._host
        host.transmit(self._data, self.target)
        timeout = host.settings.transaction_timeout
        if self.is_invite:
            if not self.reliable:
                self._arm_retx("A", host.settings.t1, now)
            self._arm_end("B", timeout, now)
        else:
            if not self.reliable:
                self._arm_retx("E", host.settings.t1, now)
            self._arm_end("F", timeout, now)

    @property
    def started(self) -> bool:
        """False for a CANCEL still waiting for the INVITE's first provisional (§9.1)."""
        return self._started

    def receive_response(self, response: Response, now: float) -> bool:
        """Feed a matched response; False when the state machine absorbed it."""
        status = response.status
        kind = "1xx" if status < 200 else "2xx" if status < 300 else "final"
        if self._request is not None:
            self.last_response = response
        return self._input(kind, response, now)

    def transport_error(self, now: float) -> bool:
        """The transport failed to carry our request (§17.1.4); False when the state ignores it."""
        return self._input("transport_error", None, now)

    def _linger(self) -> None:
        # A retransmitted final response is answered from _ack_data; a 2xx is passed up as it comes.
        super()._linger()
        self.last_response = None
        self.cancel_transaction = None
        self._data = b""

    def attach_cancel(self, cancel: ClientTransaction, now: float) -> None:
        """Link a CANCEL; it is sent once a provisional has arrived (§9.1)."""
        self.cancel_transaction = cancel
        if self.state is PROCEEDING:
            _release_cancel(self, None, now)


def _client_transmit(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction)
    txn._host.stats["retransmissions"] += 1
    txn._host.transmit(txn._data, txn.target)


def _double_a(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    # §17.1.1.2: Timer A doubles without a cap; Timer B bounds the attempts.
    txn._interval *= 2
    txn._arm_retx("A", txn._interval, now)


def _next_e(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    # §17.1.2.2: doubling capped at T2 in Trying; T2 flat once a provisional arrived.
    settings = txn._host.settings
    txn._interval = settings.t2 if txn.state is PROCEEDING else min(txn._interval * 2, settings.t2)
    txn._arm_retx("E", txn._interval, now)


def _pass_up(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(message, Response) and isinstance(txn, ClientTransaction)
    txn._host.emit(ResponseReceived(message, txn.target, txn))


def _timed_out(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction)
    txn._host.stats["transactions_timed_out"] += 1
    txn._host.emit(TransactionTimedOut(txn))
    _drop_pending_cancel(txn, message, now)


def _transport_failed(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction)
    txn._host.stats["transport_errors"] += 1
    txn._host.emit(TransportFailed(txn))
    _drop_pending_cancel(txn, message, now)


def _send_ack(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction) and isinstance(message, Response)
    txn._ack_data = build_non2xx_ack(txn.request, message).to_bytes()
    txn._host.transmit(txn._ack_data, txn.target)


def _resend_ack(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction)
    if txn._ack_data is not None:
        txn._host.stats["retransmissions"] += 1
        txn._host.transmit(txn._ack_data, txn.target)


def _start_d(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._arm_end("D", txn._host.settings.timer_d(txn.reliable), now)


def _start_k(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._arm_end("K", txn._host.settings.timer_k(txn.reliable), now)


def _start_m(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    # RFC 6026 §8.4: stay Accepted for 64*T1 so 2xx retransmissions still reach the TU.
    txn._arm_end("M", txn._host.settings.transaction_timeout, now)


def _release_cancel(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction)
    cancel = txn.cancel_transaction
    if cancel is not None and not cancel._started:
        cancel.start(now)
        # §9.1: give up on the INVITE when no final response comes 64*T1 after the CANCEL.
        txn._arm_end("cancel_guard", txn._host.settings.transaction_timeout, now)


def _drop_pending_cancel(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ClientTransaction)
    cancel = txn.cancel_transaction
    if cancel is not None and not cancel._started and not cancel._ended:
        cancel._end()


_INVITE_CLIENT: Table = {
    (CALLING, "A"): (CALLING, (_client_transmit, _double_a)),
    (CALLING, "B"): (TERMINATED, (_timed_out,)),
    # Figure 5: only Calling reports a transport error; once a provisional came, the INVITE is
    # ended by its final answer, a CANCEL or the cancel guard.
    (CALLING, "transport_error"): (TERMINATED, (_transport_failed,)),
    (CALLING, "1xx"): (PROCEEDING, (stop_timers, _pass_up, _release_cancel)),
    (CALLING, "2xx"): (ACCEPTED, (stop_timers, _drop_pending_cancel, _pass_up, _start_m, linger)),
    (CALLING, "final"): (COMPLETED, (stop_timers, _drop_pending_cancel, _pass_up, _send_ack, _start_d, linger)),
    (PROCEEDING, "1xx"): (PROCEEDING, (_pass_up,)),
    (PROCEEDING, "2xx"): (ACCEPTED, (stop_timers, _pass_up, _start_m, linger)),
    (PROCEEDING, "final"): (COMPLETED, (stop_timers, _pass_up, _send_ack, _start_d, linger)),
    (PROCEEDING, "cancel_guard"): (TERMINATED, (_timed_out,)),
    (COMPLETED, "final"): (COMPLETED, (_resend_ack,)),
    (COMPLETED, "D"): (TERMINATED, ()),
    (ACCEPTED, "2xx"): (ACCEPTED, (_pass_up,)),
    (ACCEPTED, "M"): (TERMINATED, ()),
}

_NON_INVITE_CLIENT: Table = {
    (TRYING, "E"): (TRYING, (_client_transmit, _next_e)),
    (TRYING, "F"): (TERMINATED, (_timed_out,)),
    (TRYING, "transport_error"): (TERMINATED, (_transport_failed,)),
    (TRYING, "1xx"): (PROCEEDING, (_pass_up,)),
    (TRYING, "2xx"): (COMPLETED, (stop_timers, _pass_up, _start_k, linger)),
    (TRYING, "final"): (COMPLETED, (stop_timers, _pass_up, _start_k, linger)),
    (PROCEEDING, "E"): (PROCEEDING, (_client_transmit, _next_e)),
    (PROCEEDING, "F"): (TERMINATED, (_timed_out,)),
    (PROCEEDING, "transport_error"): (TERMINATED, (_transport_failed,)),
    (PROCEEDING, "1xx"): (PROCEEDING, (_pass_up,)),
    (PROCEEDING, "2xx"): (COMPLETED, (stop_timers, _pass_up, _start_k, linger)),
    (PROCEEDING, "final"): (COMPLETED, (stop_timers, _pass_up, _start_k, linger)),
    (COMPLETED, "K"): (TERMINATED, ()),
}


def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 (§17.1.1.3): same branch, To from the response."""
    headers: list[tuple[str, str]] = []
    via_done = False
    for name, value in invite.headers:
        if name == "Via":
            if not via_done:
                headers.append((name, value))
                via_done = True
        elif name in ("From", "Call-ID", "Route", "Max-Forwards"):
            headers.append((name, value))
    to = response.get("To")
    if to is not None:
        headers.append(("To", to))
    headers.append(("CSeq", f"{invite.cseq[0]} ACK"))
    return Request("ACK", invite.uri, headers)


# -- server transactions (§17.2) ------------------------------------------------------------
class ServerTransaction(TransactionBase):
    """An INVITE (§17.2.1) or non-INVITE (§17.2.2) server transaction."""

    __slots__ = ("source", "response_target", "last_response", "ack_received", "_data", "_to_tag")

    def __init__(self, key: tuple[str, ...], request: Request, source: Target, response_target: Target,
                 host: TransactionHost) -> None:
        invite = request.method == "INVITE"
        super().__init__(key, request, source[0] != "udp", host,
                         _INVITE_SERVER if invite else _NON_INVITE_SERVER, PROCEEDING if invite else TRYING)
        self.source = source
        self.response_target = response_target
        self.last_response: Response | None = None
        self.ack_received = False
        self._data: bytes | None = None
        self._to_tag: str | None = None

    def send_response(self, response: Response, now: float) -> None:
        """Send a TU response through the state machine; raises LocalProtocolError when too late."""
        status = response.status
        if status < 200:
            kind = "tu_1xx"
        elif status < 300 and self.is_invite:
            kind = "tu_2xx"
        else:
            kind = "tu_final"
        if self._request is not None:
            self.last_response = response
        if not self._input(kind, response, now):
            raise LocalProtocolError(f"cannot send {status} in state {self.state.value}")

    def receive_request(self, request: Request, now: float) -> None:
        """A retransmission (or the ACK of a non-2xx) matched to this transaction."""
        self._input("ack" if request.method == "ACK" else "request", request, now)

    def receive_2xx_ack(self, now: float) -> None:
        """The ACK of our 2xx arrived (§13.3.1.4): stop retransmitting it, linger slim until Timer L."""
        self.ack_received = True
        if self._retx_timer is not None:
            self._retx_timer.cancel()
            self._retx_timer = None
        if self.state is ACCEPTED:
            self._linger()

    @property
    def response_to_tag(self) -> str | None:
        """The To tag of our last response above 100 (the 200 to a CANCEL repeats it, §9.2)."""
        last = self.last_response
        if last is None:
            return self._to_tag
        return last.to_tag if last.status > 100 else None

    def _linger(self) -> None:
        # Only _data is resent from here on; Timer L's AckNotReceived needs the request, so an
        # unacknowledged 2xx never lingers slim.
        self._to_tag = self.response_to_tag
        super()._linger()
        self.last_response = None

    @property
    def awaiting_ack(self) -> bool:
        """True while our 2xx to an INVITE is being retransmitted."""
        return self.state is ACCEPTED and not self.ack_received


def _server_send(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ServerTransaction) and isinstance(message, Response)
    txn._data = message.to_bytes()
    txn._host.transmit(txn._data, txn.response_target)


def _server_resend(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ServerTransaction)
    if txn._data is not None:
        txn._host.stats["retransmissions"] += 1
        txn._host.transmit(txn._data, txn.response_target)


def _start_g_h(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    settings = txn._host.settings
    if not txn.reliable:
        txn._interval = settings.t1
        txn._arm_retx("G", settings.t1, now)
    txn._arm_end("H", settings.transaction_timeout, now)


def _next_g(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._interval = min(txn._interval * 2, txn._host.settings.t2)
    txn._arm_retx("G", txn._interval, now)


def _start_i(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._arm_end("I", txn._host.settings.timer_i(txn.reliable), now)


def _start_j(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._arm_end("J", txn._host.settings.timer_j(txn.reliable), now)


def _start_2xx_retx(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    # §13.3.1.4: the UAS core retransmits its 2xx on every transport (a proxy further along
    # may use UDP) from T1 doubling to T2, until the ACK arrives or 64*T1 passed (Timer L).
    settings = txn._host.settings
    txn._interval = settings.t1
    txn._arm_retx("2xx", settings.t1, now)
    txn._arm_end("L", settings.transaction_timeout, now)


def _next_2xx(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    txn._interval = min(txn._interval * 2, txn._host.settings.t2)
    txn._arm_retx("2xx", txn._interval, now)


def _report_missing_ack(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ServerTransaction)
    if not txn.ack_received:
        txn._host.stats["ack_not_received"] += 1
        txn._host.emit(AckNotReceived(txn))


def _resend_unacked_2xx(txn: TransactionBase, message: Request | Response | None, now: float) -> None:
    assert isinstance(txn, ServerTransaction)
    if not txn.ack_received:
        _server_resend(txn, message, now)


_INVITE_SERVER: Table = {
    (PROCEEDING, "request"): (PROCEEDING, (_server_resend,)),
    (PROCEEDING, "tu_1xx"): (PROCEEDING, (_server_send,)),
    (PROCEEDING, "tu_2xx"): (ACCEPTED, (_server_send, _start_2xx_retx)),
    (PROCEEDING, "tu_final"): (COMPLETED, (_server_send, _start_g_h, linger)),
    (COMPLETED, "request"): (COMPLETED, (_server_resend,)),
    (COMPLETED, "G"): (COMPLETED, (_server_resend, _next_g)),
    (COMPLETED, "H"): (TERMINATED, ()),
    (COMPLETED, "ack"): (CONFIRMED, (stop_timers, _start_i)),
    (CONFIRMED, "I"): (TERMINATED, ()),
    (ACCEPTED, "request"): (ACCEPTED, (_resend_unacked_2xx,)),
    (ACCEPTED, "tu_2xx"): (ACCEPTED, (_server_send,)),
    (ACCEPTED, "2xx"): (ACCEPTED, (_server_resend, _next_2xx)),
    (ACCEPTED, "L"): (TERMINATED, (_report_missing_ack,)),
}

_NON_INVITE_SERVER: Table = {
    (TRYING, "tu_1xx"): (PROCEEDING, (_server_send,)),
    (TRYING, "tu_final"): (COMPLETED, (_server_send, _start_j, linger)),
    (PROCEEDING, "request"): (PROCEEDING, (_server_resend,)),
    (PROCEEDING, "tu_1xx"): (PROCEEDING, (_server_send,)),
    (PROCEEDING, "tu_final"): (COMPLETED, (_server_send, _start_j, linger)),
    (COMPLETED, "request"): (COMPLETED, (_server_resend,)),
    (COMPLETED, "J"): (TERMINATED, ()),
}
