"""One call through the B2BUA: leg A (we are its UAS) bridged to leg B (we are its UAC).

A plain state machine driven by the controller with endpoint events; it never waits, owns no
task, and reaches SIP only through its `CallContext`. This module sets calls up, answers them,
and ends them; leg B's INVITE to each target and its answers are handled by `hunting`, requests
within the dialogs are relayed by `dialog_relay`. What crosses between legs is decided in `propagation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.b2bua import propagation
from gateway.b2bua.call_context import A, B, CallContext, CallState, Cancellable, Target
from gateway.b2bua.dialog_relay import DialogRelay, Relay
from gateway.b2bua.events import (
    ENDED_ACK_TIMEOUT,
    ENDED_BYE,
    ENDED_MAX_DURATION,
    ENDED_SESSION_EXPIRED,
    CallEnded,
    CallFailed,
    CallOffered,
)
from gateway.b2bua.hunting import INITIAL_INVITE, TIMER_C, Hunting
from gateway.b2bua.leg import Leg, strip_tag
from gateway.b2bua.session_timer import NO_OFFER, TimerOffer, expiry_delay
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.sip.transaction import ClientTransaction, ServerTransaction

__all__ = ["ABSORB", "INITIAL_INVITE", "TIMER_C", "Call", "CallContext", "CallState", "Relay"]

ABSORB = "absorb"


class Call(Hunting, DialogRelay):
    """Bridges one inbound INVITE to the route's targets, hunting in order on retryable failures."""

    __slots__ = (
        "ctx", "state", "legs", "invite", "invite_txn", "b_txn", "targets", "target_index",
        "offered_at", "answered_at", "callee", "rule_ids", "relays", "reinvite", "timer_c", "timer_c_fired",
        "tried", "offer", "session_timer", "max_duration_timer",
    )

    def __init__(
        self,
        ctx: CallContext,
        invite: Request,
        invite_txn: ServerTransaction,
        source: Target,
        targets: tuple[str, ...],
        callee: str,
        rule_ids: tuple[str, ...],
        now: float,
        offer: TimerOffer = NO_OFFER,
    ) -> None:
        self.ctx = ctx
        self.offer = offer  # leg A's session timer offer, as every INVITE of leg B carries it
        self.state = CallState.CALLING
        self.invite = invite
        self.invite_txn = invite_txn
        self.targets = targets
        self.target_index = 0
        self.callee = callee
        self.rule_ids = rule_ids
        self.offered_at = now
        self.answered_at = 0.0
        self.b_txn: ClientTransaction | None = None
        # In-dialog requests relayed and not answered yet; `reinvite` is the one INVITE among them.
        self.relays: set[Relay] = set()
        self.reinvite: Relay | None = None
        self.timer_c: Cancellable | None = None
        self.timer_c_fired = False
        # RFC 4028 §10: ends the call unless a refresh succeeds first; re-armed by every refresh.
        self.session_timer: Cancellable | None = None
        self.max_duration_timer: Cancellable | None = None
        # Leg B dialogs of targets given up while hunting: still indexed so a late 2xx finds its call.
        self.tried: list[Leg] = []
        transport = source[0]
        leg_a = Leg(
            call_id=invite.call_id,
            local_tag=ctx.new_tag(),
            local_uri=strip_tag(invite.get("To") or ""),
            remote_uri=strip_tag(invite.get("From") or ""),
            remote_target=parse_name_addr(invite.get("Contact") or "").uri,
            transport=transport,
            contact=ctx.contact_for(transport),
            remote_tag=invite.from_tag,
            route_set=tuple(invite.get_all("Record-Route")),
            peer=source if transport != "udp" else None,
            remote_cseq=invite.cseq[0],
            flow_open=ctx.flow_open,
        )
        self.legs: list[Leg] = [leg_a, leg_a]  # leg B replaces index 1 when the INVITE goes out

    # -- setting up ----------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Tell observers and send the INVITE of leg B to the first target."""
        self.ctx.bind_dialog(self.legs[A], self, A)
        self.ctx.observer.call_offered(
            CallOffered(self.invite.call_id, self.legs[A].remote_uri, self.callee, self.targets[0], self.rule_ids, now)
        )
        self._invite_next_target(now)

    def _respond_a(self, response: Response, now: float) -> None:
        self.ctx.respond(self.invite_txn, response, now)

    # -- leg A gives up or forgets to ACK ------------------------------------------------
    def on_cancel(self, now: float) -> None:
        """A's CANCEL (already answered 200 by the endpoint): 487 on A, CANCEL on B (§9.2)."""
        if self.state is not CallState.CALLING:
            return
        self.state = CallState.CANCELLING
        self._stop_timer_c()
        self._respond_a(make_response(self.invite, 487, to_tag=self.legs[A].local_tag), now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, 487, now))
        if self.b_txn is not None:
            self.ctx.cancel(self.b_txn, now)

    def on_ack_missing(self, now: float) -> None:
        """Our 2xx to A was never ACKed (§13.3.1.4): close both legs."""
        if self.state is CallState.HUNG_UP:
            self._send_bye(self.legs[A], now)  # §15: the server transaction timed out
            self._finish(now)
        elif self.state is CallState.ANSWERED:
            leg_b = self.legs[B]
            pending = leg_b.pending_ack
            if pending is not None:
                self.ctx.stateless(pending, leg_b.next_hop())
                leg_b.pending_ack = None
            self._send_bye(leg_b, now)
            self._send_bye(self.legs[A], now)  # §13.3.1.4: the session SHOULD be ended with a BYE
            self._end("gateway", now, ENDED_ACK_TIMEOUT)

    # -- ACK and BYE within the dialog (the rest is relayed by DialogRelay) -------------
    def on_ack(self, side: int, ack: Request, now: float) -> None:
        """An ACK for a 2xx arrived on `side`; the other leg's pending ACK goes out, with its body."""
        if ack.from_tag != self.legs[side].remote_tag:
            return  # §12: not this dialog's ACK, whatever its To tag says
        self._forward_ack(side, ack, now)

    def _forward_ack(self, side: int, ack: Request | None, now: float) -> None:
        if self.state is CallState.HUNG_UP and side == A:
            self._send_bye(self.legs[A], now)
            self._finish(now)
            return
        other = self.legs[1 - side]
        pending = other.pending_ack
        if pending is None:
            return
        if ack is not None:
            propagation.copy_body(ack, pending)
        self.ctx.stateless(pending, other.next_hop())
        other.last_ack, other.pending_ack = pending, None
        if side == A and self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED

    def _on_bye(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
        self.ctx.respond(txn, make_response(request, 200), now)
        if self.state in (CallState.CALLING, CallState.CANCELLING):
            # §15: a BYE on an early dialog works like a CANCEL (only the caller may send one,
            # the callee MUST NOT); the call ends when leg B's INVITE gets its final answer.
            if side == A:
                self.on_cancel(now)
            elif self.state is CallState.CALLING and self.b_txn is not None:
                self.ctx.cancel(self.b_txn, now)
            return
        if self.state is CallState.HUNG_UP:
            if side == A:
                self._finish(now)  # A hung up too before its ACK: nobody is left to tell
            return  # B's BYE crossed the gateway's: A's BYE still waits for A's ACK
        if self.state is CallState.ANSWERED and side == B:
            # §15: leg A's callee MUST NOT send BYE before A's ACK of the 2xx (or its timeout).
            self._ack_pending(self.legs[B])
            self.ctx.observer.call_ended(CallEnded(self.invite.call_id, now - self.answered_at, "callee", now))
            self.state = CallState.HUNG_UP
            return
        if self.state is CallState.ANSWERED and side == A:
            self._forward_ack(A, None, now)
        self._send_bye(self.legs[1 - side], now)
        self._end("caller" if side == A else "callee", now)

    # -- ending --------------------------------------------------------------------------
    def _send_bye(self, leg: Leg, now: float) -> None:
        if leg.remote_tag is None:
            return
        txn = self.ctx.request(leg.create_request("BYE"), leg.next_hop(), now)
        if txn is not None:
            self.ctx.bind_transaction(txn, self, ABSORB)

    def _ack_pending(self, leg: Leg) -> None:
        pending = leg.pending_ack
        if pending is not None:
            self.ctx.stateless(pending, leg.next_hop())
            leg.last_ack, leg.pending_ack = pending, None

    def _ack_and_remember(self, leg: Leg, cseq: int) -> None:
        ack = leg.create_request("ACK", cseq=cseq)
        self.ctx.stateless(ack, leg.next_hop())
        leg.last_ack = ack

    def _ack_and_bye(self, leg: Leg, cseq: int, now: float) -> None:
        self._ack_and_remember(leg, cseq)
        self._send_bye(leg, now)

    def _end(self, ended_by: str, now: float, reason: str = ENDED_BYE) -> None:
        if self.state is CallState.ENDED:
            return
        self.ctx.observer.call_ended(CallEnded(self.invite.call_id, now - self.answered_at, ended_by, now, reason))
        self._finish(now)

    # -- session timers (RFC 4028) and the longest call ----------------------------------
    def _watch_session(self, interval: int | None, now: float) -> None:
        """Restart the session watch for a 2xx that agreed on `interval` (None: no session timer)."""
        if self.session_timer is not None:
            self.session_timer.cancel()
            self.session_timer = None
        if interval is not None:
            self.session_timer = self.ctx.schedule(now + expiry_delay(interval), self._on_session_expired)

    def _on_session_expired(self, now: float) -> None:
        # §10: neither side refreshed in time; one of them is gone (unplugged, NAT binding lost).
        self.session_timer = None
        self._hang_up_both(ENDED_SESSION_EXPIRED, now)

    def _on_max_duration(self, now: float) -> None:
        self.max_duration_timer = None
        self._hang_up_both(ENDED_MAX_DURATION, now)

    def _stop_call_timers(self) -> None:
        for timer in (self.session_timer, self.max_duration_timer):
            if timer is not None:
                timer.cancel()
        self.session_timer = self.max_duration_timer = None

    def _hang_up_both(self, reason: str, now: float) -> None:
        """The gateway ends an answered call: BYE on both legs."""
        if self.state is CallState.CONFIRMED:
            for leg in (self.legs[B], self.legs[A]):
                self._ack_pending(leg)  # a relayed re-INVITE's 2xx still waiting for its ACK (§13.2.2.4)
                self._send_bye(leg, now)
            self._end("gateway", now, reason)
        elif self.state is CallState.ANSWERED:
            # Leg B's 2xx gets its ACK before the BYE; leg A's BYE waits for A's ACK of our 2xx
            # (§15: the callee side MUST NOT send BYE before it), as when B hangs up this early.
            self._stop_call_timers()
            self._ack_pending(self.legs[B])
            self._send_bye(self.legs[B], now)
            self.ctx.observer.call_ended(
                CallEnded(self.invite.call_id, now - self.answered_at, "gateway", now, reason)
            )
            self.state = CallState.HUNG_UP

    def _finish(self, now: float) -> None:
        self.state = CallState.ENDED
        self._stop_timer_c()
        self._stop_call_timers()
        # §15.1.2: requests still pending when the session ends get their final answer now; the
        # other leg's late answer to them is absorbed (see `on_relay_response`).
        for relay in self.relays:
            relay.answered = True
            self.ctx.respond(relay.transaction, make_response(relay.transaction.request, 487), now)
        self.relays.clear()
        self.reinvite = None
        self.ctx.release(self)
