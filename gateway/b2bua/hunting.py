"""Leg B's half of setting a call up: the INVITE to each target in turn (hunting on retryable
failures), Timer C, and what leg B's final answers do — answer the caller, fail the call, or
arrive late from a fork or a target already given up.

`Hunting` is a mixin of `Call`; leg A's side, BYE and the ending of calls stay in `call`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.b2bua import propagation
from gateway.b2bua.call_context import A, B, CallContext, CallState, Cancellable
from gateway.b2bua.events import CallAnswered, CallFailed
from gateway.b2bua.leg import Leg, contact_target
from gateway.b2bua.session_timer import TimerOffer, answer_interval, write_offer
from gateway.sip.errors import LocalProtocolError
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.sip.transaction import ClientTransaction

# §16.6 step 11: Timer C bounds how long leg B may ring; "greater than 3 minutes".
TIMER_C = 181.0

# What the caller hears when leg B's answer cannot be used (§21.5.3: an invalid response downstream).
BAD_GATEWAY = 502

INITIAL_INVITE = "invite"


class Hunting:
    """Sends leg B's INVITE to the route's targets in order and handles leg B's answers to it."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by `Call`
        ctx: CallContext
        state: CallState
        legs: list[Leg]
        invite: Request
        b_txn: ClientTransaction | None
        targets: tuple[str, ...]
        target_index: int
        callee: str
        offer: TimerOffer
        offered_at: float
        answered_at: float
        timer_c: Cancellable | None
        timer_c_fired: bool
        tried: list[Leg]
        max_duration_timer: Cancellable | None

        def _respond_a(self, response: Response, now: float) -> None: ...

        def _ack_and_bye(self, leg: Leg, cseq: int, now: float) -> None: ...

        def _watch_session(self, interval: int | None, now: float) -> None: ...

        def _on_max_duration(self, now: float) -> None: ...

        def _finish(self, now: float) -> None: ...

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
