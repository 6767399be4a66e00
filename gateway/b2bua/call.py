"""One call through the B2BUA: leg A (we are its UAS) bridged to leg B (we are its UAC).

A plain state machine driven by the controller with endpoint events; it never waits, owns no
task, and reaches SIP only through its `CallContext`. A call exists from the INVITE on, waiting in
ROUTING for the router's decision (which may come later: a CANCEL or a retransmission meanwhile
finds the call). This module routes calls, answers and ends them; ringing leg B is its `Hunt`'s
job (`hunt`), requests within the dialogs are relayed by `dialog_relay`. What crosses between legs
is decided in `propagation`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.b2bua import propagation
from gateway.b2bua import transfer as transfers
from gateway.b2bua.call_context import ABSORB, A, B, CallContext, CallState, Cancellable, Party, Target
from gateway.b2bua.dialog_relay import DialogRelay, Relay
from gateway.b2bua.events import (
    ENDED_ACK_TIMEOUT,
    ENDED_BYE,
    ENDED_MAX_DURATION,
    ENDED_SESSION_EXPIRED,
    CallAnswered,
    CallEnded,
    CallFailed,
    CallOffered,
    CallStarted,
)
from gateway.b2bua.hunt import TIMER_C, Branch, Hunt
from gateway.b2bua.leg import Leg, remember_sdp, strip_tag
from gateway.b2bua.session_timer import NO_OFFER, TimerOffer, answer_interval, expiry_delay
from gateway.routing.decision import RouteDecision
from gateway.routing.request import Router, RouteRequest
from gateway.routing.targets import Target as RouteTarget
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.sip.transaction import ServerTransaction

__all__ = ["ABSORB", "ROUTING_TIMEOUT", "TIMER_C", "Branch", "Call", "CallContext", "CallState", "Relay"]

log = logging.getLogger(__name__)

# A router that never delivers must not hold a call forever: past this (Timer B's 64*T1, when the
# caller's own INVITE transaction gives up), the caller hears 500.
ROUTING_TIMEOUT = 32.0
ROUTING_FAILED = 500


class Call(DialogRelay):
    """Bridges one inbound INVITE to the targets routing chose, through its `Hunt`."""

    __slots__ = (
        "ctx", "state", "legs", "invite", "invite_txn", "hunt", "routing_timer", "answered_by", "engaged", "caller_employee",
        "offered_at", "answered_at", "callee", "rule_ids", "relays", "reinvite",
        "offer", "session_timer", "max_duration_timer", "parties", "transfer", "former_hunts",
    )

    def __init__(
        self,
        ctx: CallContext,
        invite: Request,
        invite_txn: ServerTransaction,
        source: Target,
        callee: str,
        now: float,
        offer: TimerOffer = NO_OFFER,
    ) -> None:
        self.ctx = ctx
        self.offer = offer  # leg A's session timer offer, as every INVITE of leg B carries it
        self.state = CallState.ROUTING
        self.invite = invite
        self.invite_txn = invite_txn
        self.callee = callee
        self.rule_ids: tuple[str, ...] = ()
        self.offered_at = now
        self.answered_at = 0.0
        self.hunt: Hunt | None = None
        self.routing_timer: Cancellable | None = None
        self.answered_by: RouteTarget | None = None
        self.engaged: tuple[int, ...] = ()  # employees this answered call keeps busy (callee, calling employee)
        self.caller_employee: int | None = None
        # In-dialog requests relayed and not answered yet; `reinvite` is the one INVITE among them.
        self.relays: set[Relay] = set()
        self.reinvite: Relay | None = None
        # RFC 4028 §10: ends the call unless a refresh succeeds first; re-armed by every refresh.
        self.session_timer: Cancellable | None = None
        self.max_duration_timer: Cancellable | None = None
        # The employees' phones on each side (None: the outside party); only they may transfer (R5).
        self.parties: list[Party | None] = [None, None]
        self.transfer: transfers.Transfer | None = None  # a REFER being carried out
        self.former_hunts: list[Hunt] = []  # transfers' hunts, whose legs are released with the call
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
        remember_sdp(leg_a, invite)
        # Leg B is the leg whose early dialog or answer the caller sees; until there is one, index 1
        # is leg A itself (nothing can be relayed yet, see `DialogRelay._refusal`).
        self.legs: list[Leg] = [leg_a, leg_a]

    # -- routing -------------------------------------------------------------------------
    def route(self, router: Router, request: RouteRequest, now: float) -> None:
        """Tell observers the call started and ask `router`; its decision may come now or later."""
        self.ctx.bind_dialog(self.legs[A], self, A)
        if request.authenticated_user:
            self.parties[A] = Party(None, request.authenticated_user)  # an employee's phone calling
        self.ctx.observer.call_started(CallStarted(self.invite.call_id, request, now))
        try:
            router.route(request, self.on_decision)
        except Exception:
            # A broken router fails this call, never the gateway.
            log.exception("router failed on %s", self.invite.call_id)
            if self.state is CallState.ROUTING:
                self._fail(ROUTING_FAILED, now)
            return
        if self.state is CallState.ROUTING:
            self.routing_timer = self.ctx.schedule(now + ROUTING_TIMEOUT, self._on_routing_timeout)

    def on_decision(self, decision: RouteDecision, now: float) -> None:
        """The router's decision (the `Deliver` of `Router.route`); ignored once the caller gave up."""
        if self.state is not CallState.ROUTING:
            return
        if self.routing_timer is not None:
            self.routing_timer.cancel()
            self.routing_timer = None
        self.rule_ids, self.caller_employee = decision.rule_ids, decision.caller_employee_id
        if decision.caller_employee_id is not None:
            calling = self.parties[A]
            self.parties[A] = Party(decision.caller_employee_id, calling.extension if calling is not None else None)
        if not decision.forwards:
            status = decision.status or 404
            if not 300 <= status < 700:
                log.warning("routing rejected %s with %s, not a failure status", self.invite.call_id, status)
                status = ROUTING_FAILED
            self._fail(status, now)
            return
        self.state = CallState.CALLING
        first = decision.steps[0].targets[0] if decision.steps[0].targets else None
        self.ctx.observer.call_offered(CallOffered(
            self.invite.call_id, self.legs[A].remote_uri, self.callee,
            (first.uri or first.describe()) if first is not None else "", decision.rule_ids, now, decision,
        ))
        self.hunt = Hunt(self.ctx, self, decision.steps)
        self.hunt.start(now)

    def _on_routing_timeout(self, now: float) -> None:
        self.routing_timer = None
        if self.state is CallState.ROUTING:
            log.warning("no routing decision for %s in %g s", self.invite.call_id, ROUTING_TIMEOUT)
            self._fail(ROUTING_FAILED, now)

    def _respond_a(self, response: Response, now: float) -> None:
        self.ctx.respond(self.invite_txn, response, now)

    # -- what the hunt reports (HuntOwner) ------------------------------------------------
    def early(self, leg: Leg, response: Response, now: float) -> None:
        # The first early dialog is the one A's early requests (UPDATE, INFO) are relayed to.
        if self.legs[B] is self.legs[A]:
            self.legs[B] = leg
        leg_a = self.legs[A]
        self._respond_a(propagation.relay_response(response, self.invite, leg_a.local_tag, leg_a.contact), now)

    def leg_ended(self, leg: Leg) -> None:
        if self.legs[B] is leg:
            self.legs[B] = self.legs[A]

    def answered(self, leg: Leg, target: RouteTarget, response: Response, now: float) -> None:
        self.legs[B] = leg
        remember_sdp(leg, response)
        self.parties[B] = transfers.party_of(target)
        leg.pending_ack = leg.create_request("ACK", cseq=response.cseq[0])
        self.state = CallState.ANSWERED
        self.answered_at = now
        self.answered_by = target
        self.engaged = tuple(who for who in (target.employee_id, self.caller_employee) if who is not None)
        for employee_id in self.engaged:
            self.ctx.engaged(employee_id, 1)
        leg_a = self.legs[A]
        answer = propagation.relay_response(response, self.invite, leg_a.local_tag, leg_a.contact)
        interval = answer_interval(self.offer, response, answer)
        self._respond_a(answer, now)
        self.ctx.observer.call_answered(CallAnswered(self.invite.call_id, now, now - self.offered_at, target))
        self._watch_session(interval, now)
        if self.ctx.max_call_seconds > 0:
            self.max_duration_timer = self.ctx.schedule(now + self.ctx.max_call_seconds, self._on_max_duration)

    def failed(self, status: int, now: float, extra: list[tuple[str, str]] | None) -> None:
        self._fail(status, now, extra)

    def _fail(self, status: int, now: float, extra: list[tuple[str, str]] | None = None) -> None:
        response = make_response(self.invite, status, to_tag=self.legs[A].local_tag)
        if extra:
            response.headers += extra
        self._respond_a(response, now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, status, now))
        self._finish(now)

    # -- leg B's answers to its INVITEs (routed by the controller) ---------------------------
    def on_branch_response(self, branch: Branch, response: Response, now: float) -> None:
        hunt = self.hunt
        if hunt is None:
            return
        hunt.on_response(branch, response, now)
        if self.state is CallState.CANCELLING and not hunt.live:
            self._finish(now)

    def on_branch_failure(self, branch: Branch, status: int, now: float) -> None:
        hunt = self.hunt
        if hunt is None:
            return
        hunt.on_failure(branch, status, now)
        if self.state is CallState.CANCELLING and not hunt.live:
            self._finish(now)

    def on_2xx_retransmission(self, side: int, response: Response, now: float) -> None:
        """A 2xx after the first final answer of its INVITE.

        The same dialog's 2xx again means our ACK was lost: the same ACK goes again (§13.2.2.4).
        Another dialog's 2xx (a fork answering too, or a leg given up that answers late) is ACKed
        and ended with a BYE at once by the hunt.
        """
        leg = self.legs[side]
        if response.call_id != leg.call_id or response.to_tag != leg.remote_tag:
            if self.hunt is not None:
                self.hunt.stray_2xx(response, now)
            return
        ack = leg.last_ack
        if ack is not None and ack.cseq[0] == response.cseq[0]:
            self.ctx.stateless(ack, leg.next_hop())

    # -- leg A gives up or forgets to ACK ------------------------------------------------
    def on_cancel(self, now: float) -> None:
        """A's CANCEL (already answered 200 by the endpoint): 487 on A, CANCEL on B (§9.2)."""
        if self.state is CallState.ROUTING:
            self._fail(487, now)  # no leg B yet; routing's late decision is then ignored
            return
        if self.state is not CallState.CALLING:
            return
        self.state = CallState.CANCELLING
        self._respond_a(make_response(self.invite, 487, to_tag=self.legs[A].local_tag), now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, 487, now))
        hunt = self.hunt
        if hunt is None:
            self._finish(now)
            return
        hunt.cancel(now)
        if not hunt.live:
            self._finish(now)

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
            remember_sdp(self.legs[side], ack)
        self.ctx.stateless(pending, other.next_hop())
        other.last_ack, other.pending_ack = pending, None
        if side == A and self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED

    def _on_bye(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
        self.ctx.respond(txn, make_response(request, 200), now)
        if side == A:
            self.ctx.acknowledged_by_request(self.invite_txn, now)  # its ACK may have been lost
        if self.transfer is not None:
            self.transfer.on_bye(side, now)  # R5: a transferor may leave before the target answers
            return
        if self.state in (CallState.CALLING, CallState.CANCELLING):
            # §15: a BYE on an early dialog works like a CANCEL (only the caller may send one,
            # the callee MUST NOT); the call ends when leg B's INVITE gets its final answer.
            if side == A:
                self.on_cancel(now)
            elif self.state is CallState.CALLING and self.hunt is not None:
                self.hunt.cancel_leg(self.legs[B], now)
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

    def on_refer(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
        """A REFER from `side`: the gateway transfers the call itself (`gateway.b2bua.transfer`)."""
        transfers.on_refer(self, side, request, txn, now)

    def hunts(self) -> list[Hunt]:
        """Every hunt of the call (its own, its transfers'), whose legs end with it."""
        return [*([self.hunt] if self.hunt is not None else []), *self.former_hunts]

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
        if self.routing_timer is not None:
            self.routing_timer.cancel()
            self.routing_timer = None
        for employee_id in self.engaged:
            self.ctx.engaged(employee_id, -1)
        self.engaged, self.answered_by = (), None
        self._stop_call_timers()
        # §15.1.2: requests still pending when the session ends get their final answer now; the
        # other leg's late answer to them is absorbed (see `on_relay_response`).
        for relay in self.relays:
            relay.answered = True
            self.ctx.respond(relay.transaction, make_response(relay.transaction.request, 487), now)
        self.relays.clear()
        self.reinvite = None
        if self.transfer is not None:
            self.transfer.stop(now)
            self.transfer = None
        self.ctx.release(self)
        hunt = self.hunt
        if hunt is not None:
            hunt.stop()
            self.hunt = None  # the hunt refers to its owner: no cycle outlives the call
