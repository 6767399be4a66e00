"""The in-dialog half of a call: requests relayed between the legs' dialogs (re-INVITE, UPDATE, INFO,
MESSAGE, OPTIONS), what cannot cross now (glare, early dialogs, teardown) and the CANCEL of a re-INVITE.

`DialogRelay` is a mixin of `Call`; BYE and the ending of calls stay in `call`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from gateway.b2bua import propagation
from gateway.b2bua.call_context import A, CallContext, CallState
from gateway.b2bua.events import ENDED_ACK_TIMEOUT
from gateway.b2bua.leg import Leg, contact_target, remember_sdp
from gateway.b2bua.session_timer import (
    NO_OFFER,
    IntervalTooSmall,
    TimerOffer,
    answer_interval,
    interval_too_small,
    read_offer,
    write_offer,
)
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.sip.transaction import ClientTransaction, ServerTransaction

TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})  # §12.2, RFC 3311 §5.1


class Relay:
    """An in-dialog request relayed from leg `from_side`; its answer goes back through `transaction`.

    `answered` is set when the gateway answered it itself (the call ended first): the other leg's
    late answer is then absorbed. `offer` is a session refresh's RFC 4028 offer.
    """

    __slots__ = ("from_side", "transaction", "answered", "out", "offer")

    def __init__(
        self, from_side: int, transaction: ServerTransaction, out: ClientTransaction, offer: TimerOffer = NO_OFFER
    ) -> None:
        self.from_side = from_side
        self.transaction = transaction
        self.answered = False
        self.out = out  # the request as relayed on the other leg
        self.offer = offer


class DialogRelay:
    """Relays in-dialog requests of a confirmed or early call from one leg to the other."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by `Call`
        ctx: CallContext
        state: CallState
        legs: list[Leg]
        relays: set[Relay]
        reinvite: Relay | None

        def _on_bye(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None: ...

        def _ack_pending(self, leg: Leg) -> None: ...

        def _ack_and_remember(self, leg: Leg, cseq: int) -> None: ...

        def _send_bye(self, leg: Leg, now: float) -> None: ...

        def _end(self, ended_by: str, now: float, reason: str = ...) -> None: ...

        def _watch_session(self, interval: int | None, now: float) -> None: ...

        def on_refer(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None: ...

    def on_request(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
        """An in-dialog request from `side`: BYE ends the call, the rest is relayed."""
        leg = self.legs[side]
        if request.from_tag != leg.remote_tag:
            self._reply(txn, request, 481, now)  # §12: the dialog ID includes the remote tag
            return
        number = request.cseq[0]
        if leg.remote_cseq is not None and number < leg.remote_cseq:
            self._reply(txn, request, 500, now)  # §12.2.2: out of order
            return
        method = request.method
        target = contact_target(request) if method in TARGET_REFRESH else None
        if target is None and method in TARGET_REFRESH and request.get("Contact") is not None:
            # §8.2 precedes §12.2.2: a request rejected as malformed changes nothing in the dialog.
            self.ctx.respond(txn, make_response(request, 400, "Bad Request (unusable Contact)"), now)
            return
        leg.remote_cseq = number
        if method == "BYE":
            self._on_bye(side, request, txn, now)
            return
        if method == "REFER":
            self.on_refer(side, request, txn, now)  # never relayed: the gateway transfers (R5)
            return
        if method not in propagation.RELAYED_IN_DIALOG:
            response = make_response(request, 405)
            response.headers.append(("Allow", propagation.ALLOW_IN_DIALOG))
            self.ctx.respond(txn, response, now)
            return
        refusal = self._refusal(side, method)
        if refusal is not None:
            response = make_response(request, refusal)
            if refusal == 500:
                # §14.2: the UAS of the earlier INVITE answers a second one 500 with Retry-After 0-10 s.
                response.headers.append(("Retry-After", str(random.randint(0, 10))))
            self.ctx.respond(txn, response, now)
            return
        hops = request.max_forwards
        if hops is not None and hops <= 0:
            self._reply(txn, request, 483, now)  # §16.3 step 3, as for the initial INVITE
            return
        offer = NO_OFFER
        if method in TARGET_REFRESH:
            # RFC 4028: a re-INVITE or UPDATE is also a session refresh, negotiated like the INVITE.
            try:
                offer = read_offer(request, self.ctx.session_timers)
            except IntervalTooSmall as small:
                self.ctx.respond(txn, interval_too_small(request, small.min_se), now)
                return
            if target is not None:
                leg.refresh_target(target)  # §12.2.2: a target refresh request
            remember_sdp(leg, request)
        other = self.legs[1 - side]
        relayed = other.create_request(method)
        relayed.set("Max-Forwards", str((hops if hops is not None else 70) - 1))
        propagation.copy_body(request, relayed)
        write_offer(offer, relayed)
        out = self.ctx.request(relayed, other.next_hop(), now)
        if out is None:
            self.ctx.respond(txn, make_response(request, propagation.UNREACHABLE), now)
            return
        relay = Relay(side, txn, out, offer)
        self.relays.add(relay)
        if method == "INVITE":
            self.reinvite = relay
        self.ctx.bind_transaction(out, self, relay)

    def on_relay_cancel(self, transaction: ServerTransaction, now: float) -> None:
        """A CANCEL of a relayed re-INVITE: cancel it on the other leg, whose final answer is relayed.

        Not answered 487 at once: the other leg may have accepted the new offer already, and its
        2xx must then reach the canceller so both sides agree on the session (§9.1).
        """
        for relay in self.relays:
            if relay.transaction is transaction and not relay.answered:
                self.ctx.cancel(relay.out, now)
                return

    def _refusal(self, side: int, method: str) -> int | None:
        """Why a relayable request from `side` cannot cross now (a status), or None when it can."""
        state = self.state
        if state not in (CallState.CALLING, CallState.ANSWERED, CallState.CONFIRMED):
            return 481  # the session is being torn down
        other = self.legs[1 - side]
        if other is self.legs[side] or other.remote_tag is None:
            return 491  # the other side has no (early) dialog yet to carry it: try again later
        if method != "INVITE":
            return None  # RFC 3311 §5.1 / RFC 6086 §4.2: UPDATE, INFO... also cross early dialogs
        # §14.2: an INVITE crossing one in progress: 500 when we are the UAS of the earlier one
        # (same side), 491 when we are its UAC (we sent one on this side's dialog).
        if state is CallState.CALLING:
            return 500 if side == A else 491
        pending = self.reinvite
        if pending is not None:
            return 500 if pending.from_side == side else 491
        if state is CallState.ANSWERED:
            return 491
        return None

    def on_relay_response(self, relay: Relay, response: Response, now: float) -> None:
        """The other leg answered a relayed request: answer the original one alike."""
        status = response.status
        if status == 100:
            return
        side = relay.from_side
        other = self.legs[1 - side]
        ok = 200 <= status < 300
        if status >= 200:
            self.relays.discard(relay)
            if relay is self.reinvite:
                self.reinvite = None
        if relay.answered:
            if ok and response.cseq[1] == "INVITE":
                # The call ended while this re-INVITE was pending: complete its transaction (§13.2.2.4);
                # the BYE already sent on this leg ends the dialog.
                self._ack_and_remember(other, response.cseq[0])
            return
        leg = self.legs[side]
        out = propagation.relay_response(response, relay.transaction.request, leg.local_tag, leg.contact)
        refreshed = ok and response.cseq[1] in TARGET_REFRESH
        interval = answer_interval(relay.offer, response, out) if refreshed else None
        self.ctx.respond(relay.transaction, out, now)
        if refreshed:
            self._learn_target(other, response)  # §12.2.1.2
            remember_sdp(other, response)
            if response.cseq[1] == "INVITE":
                other.pending_ack = other.create_request("ACK", cseq=response.cseq[0])
            if self.state in (CallState.ANSWERED, CallState.CONFIRMED):
                # RFC 4028 §10: a successful refresh, from either side, restarts the watch with
                # the interval it agreed on (none: the session timer is off from now on).
                self._watch_session(interval, now)

    def on_relay_failure(self, relay: Relay, status: int, now: float) -> None:
        """The other leg never answered a relayed request: 408 after a timeout, 503 when unreachable."""
        self.relays.discard(relay)
        if relay is self.reinvite:
            self.reinvite = None
        if relay.answered:
            return
        request = relay.transaction.request
        self.ctx.respond(relay.transaction, make_response(request, status), now)

    def _reply(self, txn: ServerTransaction, request: Request, status: int, now: float) -> None:
        self.ctx.respond(txn, make_response(request, status), now)

    @staticmethod
    def _learn_target(leg: Leg, response: Response) -> None:
        # Without a usable Contact the old target stays: the session itself was refreshed and must
        # still get its ACK and its session timer; failing the call would be worse than a stale target.
        target = contact_target(response)
        if target is not None:
            leg.refresh_target(target)

    def on_reinvite_ack_missing(self, side: int, now: float) -> None:
        """Our 2xx to a re-INVITE from `side` was never ACKed (§13.3.1.4): end the session on both legs."""
        if self.state is not CallState.CONFIRMED:
            return
        other = self.legs[1 - side]
        self._ack_pending(other)  # the other leg's 2xx still gets its ACK before the BYE
        self._send_bye(other, now)
        self._send_bye(self.legs[side], now)
        self._end("gateway", now, ENDED_ACK_TIMEOUT)
