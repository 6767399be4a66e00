"""One call through the B2BUA: leg A (we are its UAS) bridged to leg B (we are its UAC).

A plain state machine driven by the controller with endpoint events; it never waits, owns no
task, and reaches SIP only through its `CallContext`. This module sets calls up, answers them,
and ends them; requests within their dialogs are relayed by `dialog_relay`. What crosses between
legs is decided in `propagation`.
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
    CallAnswered,
    CallEnded,
    CallFailed,
    CallOffered,
)
from gateway.b2bua.leg import Leg, contact_target, strip_tag
from gateway.b2bua.session_timer import NO_OFFER, TimerOffer, answer_interval, expiry_delay, write_offer
from gateway.sip.errors import LocalProtocolError
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.sip.transaction import ClientTransaction, ServerTransaction

__all__ = ["ABSORB", "INITIAL_INVITE", "TIMER_C", "Call", "CallContext", "CallState", "Relay"]

# §16.6 step 11: Timer C bounds how long leg B may ring; "greater than 3 minutes".
TIMER_C = 181.0

# What the caller hears when leg B's answer cannot be used (§21.5.3: an invalid response downstream).
BAD_GATEWAY = 502

INITIAL_INVITE = "invite"
ABSORB = "absorb"


class Call(DialogRelay):
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

    def _invite_next_target(self, now: float) -> None:
        ctx = self.ctx
        while self.target_index < len(self.targets):
            target_uri, transport, target, flow_host = ctx.resolve(self.targets[self.target_index], self.callee)
            self.target_index += 1
            try:
                contact = ctx.contact_for(transport)
            except LocalProtocolError:
                continue  # e.g. a phone registered a tls Contact and we do not listen on tls: unreachable
            leg_b = Leg(
                call_id=ctx.new_call_id(),
                local_tag=ctx.new_tag(),
                local_uri=self.legs[A].remote_uri,  # the caller's identity crosses (propagation rule)
                remote_uri=f"<{target_uri}>",
                remote_target=target_uri,
                transport=transport,
                contact=contact,
                # A registration's flow (NAT, TCP connection) carries the whole dialog; a stream
                # connection we opened ourselves is reused too (§18.2.2).
                peer=target if flow_host is not None or transport != "udp" else None,
                flow_host=flow_host,
                flow_open=ctx.flow_open,
            )
            invite = leg_b.create_request("INVITE")
            hops = self.invite.max_forwards
            invite.set("Max-Forwards", str((hops if hops is not None else 70) - 1))
            propagation.copy_body(self.invite, invite)
            write_offer(self.offer, invite)
            txn = self.ctx.request(invite, target, now)
            if txn is None:
                continue
            if self.legs[B] is not self.legs[A]:
                self.tried.append(self.legs[B])
            self.legs[B] = leg_b
            self.b_txn = txn
            self.ctx.bind_dialog(leg_b, self, B)
            self.ctx.bind_transaction(txn, self, INITIAL_INVITE)
            self._arm_timer_c(now)
            return
        self._fail(propagation.UNREACHABLE, now)

    def _arm_timer_c(self, now: float) -> None:
        self._stop_timer_c()
        self.timer_c_fired = False
        self.timer_c = self.ctx.schedule(now + TIMER_C, self._on_timer_c)

    def _stop_timer_c(self) -> None:
        if self.timer_c is not None:
            self.timer_c.cancel()
            self.timer_c = None

    def _on_timer_c(self, now: float) -> None:
        # §16.8: leg B rang too long; CANCEL it and treat its end as a 408 (see on_invite_response).
        self.timer_c = None
        if self.state is CallState.CALLING and self.b_txn is not None:
            self.timer_c_fired = True
            self.ctx.cancel(self.b_txn, now)

    # -- leg B's answer to the INVITE ----------------------------------------------------
    def on_invite_response(self, response: Response, now: float) -> None:
        """A response of leg B to our INVITE (also 2xx retransmissions)."""
        status = response.status
        if status < 200:
            if status != 100 and self.state is CallState.CALLING:
                if not self.timer_c_fired:
                    self._arm_timer_c(now)  # §16.7 step 2: every provisional restarts Timer C
                self._learn_remote(self.legs[B], response)
                self._relay_to_a(response, now)
            return
        self._stop_timer_c()
        if status < 300:
            self._on_b_answer(response, now)
        elif self.state is CallState.CALLING:
            min_se = response.get("Min-SE") if status == 422 else None
            extra = [("Min-SE", min_se)] if min_se is not None else []  # RFC 4028 §6: try again with it
            # §16.7 step 2: after Timer C the 487 of our own CANCEL counts as a 408.
            status = propagation.TIMEOUT if self.timer_c_fired and status == 487 else status
            self._on_b_failure(status, now, extra=extra)
        elif self.state is CallState.CANCELLING:
            self._finish(now)

    def on_invite_failure(self, status: int, now: float) -> None:
        """Leg B's INVITE ended without an answer: Timer B (408) or a transport error (503, §8.1.3.1)."""
        self._stop_timer_c()
        if self.state is CallState.CALLING:
            self._on_b_failure(status, now, local=True)
        elif self.state is CallState.CANCELLING:
            self._finish(now)

    def on_2xx_retransmission(self, side: int, response: Response, now: float) -> None:
        """A 2xx after the first final answer of its INVITE.

        The same dialog's 2xx again means our ACK was lost: the same ACK goes again (§13.2.2.4).
        Another dialog's 2xx (a fork answering too, or a target given up while hunting that answers
        late) is ACKed and ended with a BYE at once (§13.2.2.4), or that callee would sit in a call
        nobody hears.
        """
        leg = self.legs[side]
        if response.call_id != leg.call_id:
            late = next((tried for tried in self.tried if tried.call_id == response.call_id), None)
            if late is not None:
                self._end_stray_dialog(late, response, now)
            return
        if response.to_tag != leg.remote_tag:
            self._end_stray_dialog(leg, response, now)
            return
        ack = leg.last_ack
        if ack is not None and ack.cseq[0] == response.cseq[0]:
            self.ctx.stateless(ack, leg.next_hop())

    def _end_stray_dialog(self, leg: Leg, response: Response, now: float) -> None:
        stray = Leg(
            call_id=leg.call_id, local_tag=leg.local_tag, local_uri=leg.local_uri, remote_uri=leg.remote_uri,
            remote_target=leg.remote_target, transport=leg.transport, contact=leg.contact,
            local_cseq=max(leg.local_cseq, response.cseq[0]), peer=leg.peer, flow_host=leg.flow_host,
            flow_open=leg.flow_open,
        )
        self._learn_remote(stray, response)
        if stray.remote_tag is not None:
            self._ack_and_bye(stray, response.cseq[0], now)

    def _on_b_answer(self, response: Response, now: float) -> None:
        leg_b = self.legs[B]
        if self.state is CallState.CALLING:
            if not self._learn_remote(leg_b, response):
                self._on_unusable_answer(leg_b, response, now)
                return
            leg_b.pending_ack = leg_b.create_request("ACK", cseq=response.cseq[0])
            self.state = CallState.ANSWERED
            self.answered_at = now
            leg_a = self.legs[A]
            answer = propagation.relay_response(response, self.invite, leg_a.local_tag, leg_a.contact)
            interval = answer_interval(self.offer, response, answer)
            self._respond_a(answer, now)
            self.ctx.observer.call_answered(CallAnswered(self.invite.call_id, now, now - self.offered_at))
            self._watch_session(interval, now)
            if self.ctx.max_call_seconds > 0:
                self.max_duration_timer = self.ctx.schedule(now + self.ctx.max_call_seconds, self._on_max_duration)
        elif self.state is CallState.CANCELLING:
            # The answer crossed A's CANCEL: complete leg B's dialog and close it at once.
            self._learn_remote(leg_b, response)
            self._ack_and_bye(leg_b, response.cseq[0], now)
            self._finish(now)

    def _on_unusable_answer(self, leg_b: Leg, response: Response, now: float) -> None:
        """A 2xx without a usable Contact (or To tag): no request could ever reach that dialog (§12.1.2).

        §13.2.2.4: it is ACKed all the same, then ended with a BYE, both sent where the INVITE went;
        the caller hears 502, the far end having failed. No hunting on: the target did answer, and
        ringing the next phone for a call someone picked up would be worse than failing it.
        """
        self._ack_and_bye(leg_b, response.cseq[0], now)
        self._fail(BAD_GATEWAY, now)

    def _on_b_failure(
        self, status: int, now: float, local: bool = False, extra: list[tuple[str, str]] | None = None
    ) -> None:
        """`local`: the gateway's own verdict (timeout, unreachable), which leg A hears unmapped;
        `extra`: headers of leg B's answer that leg A's needs too."""
        if status in propagation.HUNT_ON and self.target_index < len(self.targets):
            self._invite_next_target(now)
            return
        self._fail(status if local else propagation.failure_status(status), now, extra)

    def _fail(self, status: int, now: float, extra: list[tuple[str, str]] | None = None) -> None:
        response = make_response(self.invite, status, to_tag=self.legs[A].local_tag)
        if extra:
            response.headers += extra
        self._respond_a(response, now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, status, now))
        self._finish(now)

    def _relay_to_a(self, response: Response, now: float, status: int | None = None) -> None:
        leg_a = self.legs[A]
        self._respond_a(propagation.relay_response(response, self.invite, leg_a.local_tag, leg_a.contact, status), now)

    def _respond_a(self, response: Response, now: float) -> None:
        self.ctx.respond(self.invite_txn, response, now)

    @staticmethod
    def _learn_remote(leg: Leg, response: Response) -> bool:
        """§12.1.2: the remote tag, target and route set (reversed Record-Route) come from the response.

        False when it names no dialog or no usable target (`contact_target`): the INVITE's target is kept.
        """
        tag = response.to_tag
        if tag is None:
            return False
        leg.remote_tag = tag
        leg.route_set = tuple(reversed(response.get_all("Record-Route")))
        target = contact_target(response)
        if target is None:
            return False
        leg.refresh_target(target)
        return True

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
