"""The sans-IO SIP endpoint: bytes and time in, events and bytes out.

    ep = SipEndpoint(sent_by={"udp": ("127.0.0.1", 5060), "tcp": ("127.0.0.1", 5060)})
    ep.receive_datagram(data, source, now)      # source: Target ("udp", host, port)
    ep.receive_stream(source, data, now)        # TCP/TLS bytes of one connection
    while (event := ep.next_event()) is not None: ...
    for data, target in ep.datagrams_to_send(): transport.send(data, target)
    for target in ep.connections_to_close(): transport.close(target)
    deadline = ep.get_timer()                   # absolute time or None
    ep.handle_timer(now)
    ep.transport_error(target, now)             # TCP connect refused / connection dead
    txn = ep.send_request(request, target, now) # client transaction (Via/branch added)
    ep.send_response(server_txn, response, now) # through its server transaction
    ep.send_stateless(message, target)          # ACK of a 2xx, stateless replies
    ep.cancel(invite_txn, now)                  # CANCEL per §9.1
Counters for the metrics layer: `ep.stats`, a plain dict (keys listed on `SipEndpoint`).
Where responses go and the Via stamping of received requests live in `response_path`.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from itertools import count

from gateway.sip.errors import LocalProtocolError, RemoteProtocolError
from gateway.sip.events import (
    CancelReceived,
    Event,
    MalformedMessage,
    RequestReceived,
    ResponseReceived,
    Target,
    TransactionTerminated,
)
from gateway.sip.message import Request, Response, make_response
from gateway.sip.parser import is_keepalive, parse_message
from gateway.sip.response_path import response_target, stamp_via
from gateway.sip.status import reason_phrase
from gateway.sip.stream import StreamParser
from gateway.sip.timers import DEFAULT_TIMERS, TimerQueue, TimerSettings
from gateway.sip.transaction import ClientTransaction, ServerTransaction
from gateway.sip.transaction_base import (
    ACCEPTED,
    CALLING,
    PROCEEDING,
    TransactionBase,
    client_key,
    server_key,
)

DEFAULT_MAX_FORWARDS = "70"
# Methods are chosen by the peer: counting unknown ones under one key keeps `stats` bounded.
#: ``screen(request, source, now)`` judges each new request (not ACK, CANCEL nor a retransmission)
#: before a transaction exists for it: None lets it in, `SCREEN_DROP` drops it unanswered, any other
#: value is the status it is answered with here (the TU never hears of it).
RequestScreen = Callable[[Request, Target, float], "int | None"]
SCREEN_DROP = 0

KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
                           "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"})
# The largest UDP payload: no message on a stream needs more (gateway.tcp_limits has the same default).
MAX_STREAM_MESSAGE = 65535


class SipEndpoint:
    """One SIP endpoint (UA core + transaction layer) for every transport of a process.

    `stats` keys: ``requests_received.<METHOD>``, ``responses_received.<N>xx``,
    ``requests_sent.<METHOD>``, ``responses_sent.<N>xx``, ``transactions_created``,
    ``transactions_timed_out``, ``transport_errors``, ``retransmissions``, ``malformed``,
    ``ack_not_received``, ``requests_screened``.
    """

    def __init__(
        self,
        sent_by: dict[str, tuple[str, int]],
        timers: TimerSettings = DEFAULT_TIMERS,
        user_agent: str | None = None,
        max_stream_message: int = MAX_STREAM_MESSAGE,
    ) -> None:
        """`max_stream_message`: the largest message (header block and body) a TCP/TLS peer may send;
        a larger one gets 513 when its header block is complete, and its connection is closed."""
        self.max_stream_message = max_stream_message
        self.sent_by = {transport.lower(): address for transport, address in sent_by.items()}
        self.settings = timers
        self.user_agent = user_agent
        self.timers = TimerQueue()
        self.stats: dict[str, int] = dict.fromkeys(
            ("transactions_created", "transactions_timed_out", "transport_errors", "retransmissions", "malformed",
             "ack_not_received", "messages_too_large"), 0)
        self._events: deque[Event] = deque()
        self._outbox: list[tuple[bytes, Target]] = []
        self._client: dict[tuple[str, ...], ClientTransaction] = {}
        # The same transactions by where they send (insertion-ordered): a transport error, which a
        # peer can cause at will, costs only the transactions to that target.
        self._client_by_target: dict[Target, dict[tuple[str, ...], ClientTransaction]] = {}
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        self._awaiting_ack: dict[tuple[str, int, str], ServerTransaction] = {}
        self._streams: dict[Target, StreamParser] = {}
        self._to_close: list[Target] = []
        # Unique and cheap: a random per-process prefix and a counter (§8.1.1.7 needs uniqueness
        # across space and time, not unpredictability per message).
        self._prefix = secrets.token_hex(4)
        self._serial = count(1)
        self.screen: RequestScreen | None = None

    # -- identifiers ------------------------------------------------------------------------
    def new_branch(self) -> str:
        """A fresh RFC 3261 branch (magic cookie first, §8.1.1.7)."""
        return f"z9hG4bK{self._prefix}{next(self._serial):x}"

    def new_tag(self) -> str:
        """A fresh From/To tag (§19.3)."""
        return f"{self._prefix}{next(self._serial):x}"

    def new_call_id(self) -> str:
        """A fresh Call-ID (§8.1.1.4), qualified with our UDP/TCP host."""
        host = next(iter(self.sent_by.values()))[0]
        return f"{secrets.token_hex(6)}{next(self._serial):x}@{host}"

    # -- adapter side -----------------------------------------------------------------------
    def receive_datagram(self, data: bytes, source: Target, now: float) -> None:
        """One UDP datagram from `source`."""
        if is_keepalive(data):
            return
        try:
            message = parse_message(data)
        except RemoteProtocolError as error:
            self._malformed(error, source, now)
            return
        self._dispatch(message, source, now)

    def receive_stream(self, source: Target, data: bytes, now: float) -> None:
        """Bytes of one TCP/TLS connection; `source` identifies the connection."""
        parser = self._streams.get(source)
        if parser is None:
            parser = self._streams[source] = StreamParser(max_message_bytes=self.max_stream_message)
        parser.feed(data)
        while True:
            try:
                message = parser.next_message()
            except RemoteProtocolError as error:
                if parser.broken:
                    # The framing is lost (§18.3): nothing later on this connection can be trusted. Only
                    # a message refused for its size may carry a request to answer (513) before the close.
                    if error.status_hint == 513:
                        self.stats["messages_too_large"] += 1
                    self._malformed(error, source, now)
                    self._streams.pop(source, None)
                    self._to_close.append(source)
                    return
                self._malformed(error, source, now)
                continue
            if message is None:
                break
            self._dispatch(message, source, now)
        for _ in range(parser.pop_keepalive_pongs()):
            self._outbox.append((b"\r\n", source))  # RFC 5626 §3.5.1 pong

    def stream_closed(self, source: Target) -> None:
        """The adapter saw the connection `source` close; forget its buffered bytes."""
        self._streams.pop(source, None)

    def stream_buffered(self, source: Target) -> int:
        """Bytes of the connection `source` received but not yet a whole message (0: between messages)."""
        parser = self._streams.get(source)
        return 0 if parser is None else parser.buffered

    def transport_error(self, target: Target, now: float) -> None:
        """The adapter could not send to `target` (a refused TCP connect, a dead connection).

        Every client transaction sending there that the RFC lets fail ends with `TransportFailed`
        (§17.1.4, §18.4), so the TU answers 503 or tries its next target at once instead of after
        Timer B. UDP adapters do not call this for ICMP errors: see `gateway.transport.udp`.
        """
        sending = self._client_by_target.get(target)
        if sending is None:
            return
        failed = [txn for txn in sending.values() if txn.started]
        for txn in failed:
            txn.transport_error(now)

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[tuple[bytes, Target]]:
        """Everything to send since the last call, in order; for TCP, target names the connection."""
        outbox, self._outbox = self._outbox, []
        return outbox

    def connections_to_close(self) -> list[Target]:
        """Stream connections whose framing broke; the adapter closes them."""
        closing, self._to_close = self._to_close, []
        return closing

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` must next be called at, or None."""
        return self.timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now`."""
        self.timers.run_due(now)

    # -- TU side ----------------------------------------------------------------------------
    def send_request(self, request: Request, target: Target, now: float) -> ClientTransaction:
        """Send `request` in a new client transaction with our Via (fresh branch, rport) as its only Via.

        A UA core originates requests, never forwards them, so a Via left from an earlier attempt
        (a request object reused for an authenticated retry) is replaced.
        """
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction; use send_stateless")
        request.remove("Via")
        branch = self.new_branch()
        self._prepare_request(request, target, branch)
        key = (branch, request.method)
        txn = ClientTransaction(key, request, target, self, request.to_bytes())
        self._add_client(txn)
        self._count(f"requests_sent.{request.method}")
        txn.start(now)
        return txn

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send a response through `transaction` (LocalProtocolError when its state forbids it)."""
        transaction.send_response(response, now)
        self._count(f"responses_sent.{response.status // 100}xx")
        if transaction.awaiting_ack:
            request = transaction.request
            self._awaiting_ack[_ack_key(request)] = transaction

    def acknowledged_by_request(self, transaction: ServerTransaction, now: float) -> None:
        """The peer sent a request (a BYE) in the dialog our 2xx to `transaction` made: it has that 2xx.

        §13.3.1.4 retransmits a 2xx only to get it to the peer, so this stops the retransmissions as
        the ACK would have (the ACK may have been lost; the BYE's To tag is proof enough). Without it
        a caller whose ACK was lost gets our 200 again for 64*T1 after its BYE, and a UA that matches
        responses by status alone takes one of those for its BYE's answer.
        """
        if not transaction.awaiting_ack:
            return
        request = transaction.request
        self._awaiting_ack.pop(_ack_key(request), None)
        transaction.receive_2xx_ack(now)

    def send_stateless(self, message: Request | Response, target: Target) -> None:
        """Send without a transaction: the ACK of a 2xx (§13.2.2.4) or a stateless reply.

        A request without Via gets ours (fresh branch); one that has a Via is sent as it is,
        so the TU can resend the same ACK for every retransmitted 2xx.
        """
        if isinstance(message, Request):
            if message.get("Via") is None:
                self._prepare_request(message, target, self.new_branch())
            self._count(f"requests_sent.{message.method}")
        else:
            self._count(f"responses_sent.{message.status // 100}xx")
        self._outbox.append((message.to_bytes(), target))

    def cancel(self, invite: ClientTransaction, now: float) -> ClientTransaction | None:
        """CANCEL `invite` (§9.1); None when it already has a final response.

        The CANCEL is sent once a provisional response has arrived; before that it waits, and
        is dropped if a final response comes first.
        """
        if not invite.is_invite:
            raise LocalProtocolError("only an INVITE can be cancelled")
        if invite.state not in (CALLING, PROCEEDING):
            return None
        if invite.cancel_transaction is not None:
            return invite.cancel_transaction
        original = invite.request
        headers = [("Via", original.get_all("Via")[0])]
        headers += [(name, value) for name, value in original.headers if name in ("Route", "From", "To", "Call-ID")]
        headers += [("CSeq", f"{original.cseq[0]} CANCEL"), ("Max-Forwards", DEFAULT_MAX_FORWARDS)]
        request = Request("CANCEL", original.uri, headers)
        key = (invite.branch, "CANCEL")
        txn = ClientTransaction(key, request, invite.target, self, request.to_bytes())
        self._add_client(txn)
        self._count("requests_sent.CANCEL")
        invite.attach_cancel(txn, now)
        return txn

    # -- TransactionHost --------------------------------------------------------------------
    def transmit(self, data: bytes, target: Target) -> None:
        self._outbox.append((data, target))

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def transaction_ended(self, transaction: TransactionBase) -> None:
        assert isinstance(transaction, ClientTransaction | ServerTransaction)
        if isinstance(transaction, ClientTransaction):
            if self._client.get(transaction.key) is transaction:
                del self._client[transaction.key]
                sending = self._client_by_target[transaction.target]
                del sending[transaction.key]
                if not sending:
                    del self._client_by_target[transaction.target]
        else:
            if self._server.get(transaction.key) is transaction:
                del self._server[transaction.key]
            # A slim transaction's 2xx was acknowledged, which already dropped its _awaiting_ack entry.
            if transaction.is_invite and transaction.last_response is not None:
                request = transaction.request
                self._awaiting_ack.pop(_ack_key(request), None)
        self._events.append(TransactionTerminated(transaction))

    def _add_client(self, txn: ClientTransaction) -> None:
        self._client[txn.key] = txn
        self._client_by_target.setdefault(txn.target, {})[txn.key] = txn
        self.stats["transactions_created"] += 1

    # -- receiving --------------------------------------------------------------------------
    def _dispatch(self, message: Request | Response, source: Target, now: float) -> None:
        try:
            if isinstance(message, Request):
                self._receive_request(message, source, now)
            else:
                self._receive_response(message, source, now)
        except RemoteProtocolError as error:
            if error.partial is None and isinstance(message, Request):
                error.partial = message
            self._malformed(error, source, now)

    def _receive_request(self, request: Request, source: Target, now: float) -> None:
        method = request.method
        self._count(f"requests_received.{method if method in KNOWN_METHODS else 'OTHER'}")
        stamp_via(request, source)
        if method == "ACK":
            self._receive_ack(request, source, now)
            return
        if method == "CANCEL":
            self._receive_cancel(request, source, now)
            return
        txn_key = server_key(request)
        txn = self._server.get(txn_key)
        if txn is not None:
            txn.receive_request(request, now)  # a retransmission: absorbed or answered again
            return
        if self.screen is not None:
            verdict = self.screen(request, source, now)
            if verdict is not None:
                self._screened(txn_key, request, source, verdict, now)
                return
        txn = self._new_server_transaction(txn_key, request, source)
        if method == "INVITE":
            # §17.2.1: answer 100 at once so the client stops retransmitting over UDP.
            self.send_response(txn, make_response(request, 100), now)
        self._events.append(RequestReceived(request, source, txn))

    def _screened(self, key: tuple[str, ...], request: Request, source: Target, status: int, now: float) -> None:
        self._count("requests_screened")
        if status != SCREEN_DROP:
            # A transaction of its own answers the retransmissions (and takes the ACK of an INVITE's 403).
            txn = self._new_server_transaction(key, request, source)
            self.send_response(txn, make_response(request, status, to_tag=self.new_tag()), now)

    def _receive_ack(self, ack: Request, source: Target, now: float) -> None:
        txn = self._server.get(server_key(ack))
        if txn is not None and txn.state is not ACCEPTED:
            txn.receive_request(ack, now)  # ACK of a non-2xx: the transaction's business
            return
        waiting = self._awaiting_ack.pop(_ack_key(ack), None)
        if waiting is not None:
            waiting.receive_2xx_ack(now)
        elif txn is not None:
            txn.receive_2xx_ack(now)
        self._events.append(RequestReceived(ack, source, None))

    def _receive_cancel(self, cancel: Request, source: Target, now: float) -> None:
        key = server_key(cancel)
        txn = self._server.get(key)
        if txn is not None:
            txn.receive_request(cancel, now)
            return
        invite = self._server.get(server_key(cancel, "INVITE"))
        txn = self._new_server_transaction(key, cancel, source)
        if invite is None:
            self.send_response(txn, make_response(cancel, 481, to_tag=self.new_tag()), now)
            return
        # §9.2: the 200 to CANCEL should carry the To tag of the INVITE's responses.
        tag = invite.response_to_tag
        self.send_response(txn, make_response(cancel, 200, to_tag=tag or self.new_tag()), now)
        if invite.state is PROCEEDING:
            self._events.append(CancelReceived(cancel, source, invite))

    def _receive_response(self, response: Response, source: Target, now: float) -> None:
        self._count(f"responses_received.{response.status // 100}xx")
        txn = self._client.get(client_key(response))
        if txn is not None:
            txn.receive_response(response, now)
        elif 200 <= response.status < 300 and response.cseq[1] == "INVITE":
            # §13.2.2.4: a 2xx retransmitted after the transaction ended still needs our ACK.
            self._events.append(ResponseReceived(response, source, None))
        # §18.1.2: any other response that matches nothing is discarded.

    def _new_server_transaction(self, key: tuple[str, ...], request: Request, source: Target) -> ServerTransaction:
        txn = ServerTransaction(key, request, source, response_target(request.top_via, source), self)
        self._server[key] = txn
        self.stats["transactions_created"] += 1
        return txn

    def _malformed(self, error: RemoteProtocolError, source: Target, now: float) -> None:
        self.stats["malformed"] += 1
        partial = error.partial
        status: int | None = None
        if isinstance(partial, Request) and partial.method != "ACK":
            try:
                stamp_via(partial, source)
                target = response_target(partial.top_via, source)
                data = self._error_response(partial, error).to_bytes()
            except RemoteProtocolError:
                pass  # not even enough to answer: drop (§18.3 allows no better)
            else:
                self._outbox.append((data, target))
                status = error.status_hint
        self._events.append(MalformedMessage(source, str(error), status))

    def _error_response(self, request: Request, error: RemoteProtocolError) -> Response:
        """A stateless error answer built from raw header text: the request may not parse further."""
        headers: list[tuple[str, str]] = []
        for name, value in request.headers:
            if name == "To" and "tag=" not in value.lower():
                value = f"{value};tag={self.new_tag()}"  # §8.2.6.2: final responses carry a To tag
            if name in ("Via", "From", "To", "Call-ID", "CSeq"):
                headers.append((name, value))
        headers.append(("Warning", f'399 - "{_warning_text(str(error))}"'))
        return Response(error.status_hint, reason_phrase(error.status_hint), headers)

    # -- sending ----------------------------------------------------------------------------
    def _prepare_request(self, request: Request, target: Target, branch: str) -> None:
        transport = target[0]
        address = self.sent_by.get(transport)
        if address is None:
            raise LocalProtocolError(f"no sent-by address for transport {transport!r}")
        host, port = address
        if ":" in host:
            host = f"[{host}]"
        request.add("Via", f"SIP/2.0/{transport.upper()} {host}:{port};branch={branch};rport", first=True)
        if request.get("Max-Forwards") is None:
            request.add("Max-Forwards", DEFAULT_MAX_FORWARDS)
        if self.user_agent is not None and request.get("User-Agent") is None:
            request.add("User-Agent", self.user_agent)

    def _count(self, counter: str) -> None:
        self.stats[counter] = self.stats.get(counter, 0) + 1


def _warning_text(text: str) -> str:  # a quoted-string (§20.43): no quotes, backslashes, controls
    return "".join(c for c in text[:120] if c.isprintable() and c not in '"\\')


def _ack_key(request: Request) -> tuple[str, int, str]:
    """What an INVITE and the ACK of its 2xx share (§17.1.1.3: the ACK of a 2xx is a transaction of
    its own, with a branch of its own): the Call-ID, the CSeq number and the From tag."""
    return request.call_id, request.cseq[0], request.from_tag or ""
