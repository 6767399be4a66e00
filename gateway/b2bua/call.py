"""One call through the B2BUA: leg A (we are its UAS) bridged to leg B (we are its UAC).

A plain state machine driven by the controller with endpoint events; it never waits, owns no
task, and reaches SIP only through its `CallContext`. What crosses between legs is decided in
`propagation`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from gateway.b2bua import propagation
from gateway.b2bua.events import CallAnswered, CallEnded, CallFailed, CallOffered
from gateway.b2bua.leg import Leg, strip_tag
from gateway.sip.errors import LocalProtocolError
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.b2bua.observer import CallObserver
    from gateway.sip.transaction import ClientTransaction, ServerTransaction

Target = tuple[str, str, int]
A, B = 0, 1
TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})  # §12.2, RFC 3311 §5.1
# §16.6 step 11: Timer C bounds how long leg B may ring; "greater than 3 minutes".
TIMER_C = 181.0


class Cancellable(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None: ...


class CallState(Enum):
    """Where a call is; the names follow leg A's point of view."""

    CALLING = "calling"  # INVITE sent on leg B, no answer yet
    ANSWERED = "answered"  # 2xx relayed to A, waiting for A's ACK
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"  # A gave up; waiting for B's final answer to the CANCEL
    HUNG_UP = "hung up"  # B hung up before A's ACK; A's BYE waits for that ACK (§15)
    ENDED = "ended"


class CallContext(Protocol):
    """What a call needs from the controller: sending, indexes and observers."""

    observer: CallObserver

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None: ...

    def request(self, request: Request, target: Target, now: float) -> ClientTransaction | None: ...

    def stateless(self, message: Request, target: Target) -> None: ...

    def cancel(self, transaction: ClientTransaction, now: float) -> None: ...

    def contact_for(self, transport: str) -> str: ...

    def new_tag(self) -> str: ...

    def new_call_id(self) -> str: ...

    def resolve(self, target: str, callee: str) -> tuple[str, str, Target]:
        """(Request-URI, transport, next hop) for a routing target and the dialled user."""
        ...

    def bind_transaction(self, transaction: ClientTransaction, call: Call, purpose: object) -> None: ...

    def bind_dialog(self, leg: Leg, call: Call, side: int) -> None: ...

    def release(self, call: Call) -> None: ...

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Cancellable:
        """Call `callback(now)` once the clock reaches `deadline`."""
        ...


class Relay:
    """An in-dialog request relayed from leg `from_side`; its answer goes back through `transaction`.

    `answered` is set when the gateway answered it itself (the call ended first): the other leg's
    late answer is then absorbed.
    """

    __slots__ = ("from_side", "transaction", "answered", "out")

    def __init__(self, from_side: int, transaction: ServerTransaction, out: ClientTransaction) -> None:
        self.from_side = from_side
        self.transaction = transaction
        self.answered = False
        self.out = out  # the request as relayed on the other leg


INITIAL_INVITE = "invite"
ABSORB = "absorb"


class Call:
    """Bridges one inbound INVITE to the route's targets, hunting in order on retryable failures."""

    __slots__ = (
        "ctx", "state", "legs", "invite", "invite_txn", "b_txn", "targets", "target_index",
        "offered_at", "answered_at", "callee", "rule_ids", "relays", "reinvite", "timer_c", "timer_c_fired",
        "tried",
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
    ) -> None:
        self.ctx = ctx
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
            target_uri, transport, target = ctx.resolve(self.targets[self.target_index], self.callee)
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
            )
            invite = leg_b.create_request("INVITE")
            hops = self.invite.max_forwards
            invite.set("Max-Forwards", str((hops if hops is not None else 70) - 1))
            propagation.copy_body(self.invite, invite)
            if transport != "udp":
                leg_b.peer = target
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
            # §16.7 step 2: after Timer C the 487 of our own CANCEL counts as a 408.
            self._on_b_failure(propagation.TIMEOUT if self.timer_c_fired and status == 487 else status, now)
        elif self.state is CallState.CANCELLING:
            self._finish(now)

    def on_invite_timeout(self, now: float) -> None:
        """Timer B: nobody answered on leg B."""
        self._stop_timer_c()
        if self.state is CallState.CALLING:
            self._on_b_failure(propagation.TIMEOUT, now)
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
            local_cseq=max(leg.local_cseq, response.cseq[0]),
        )
        self._learn_remote(stray, response)
        if stray.remote_tag is not None:
            self._ack_and_bye(stray, response.cseq[0], now)

    def _on_b_answer(self, response: Response, now: float) -> None:
        leg_b = self.legs[B]
        if self.state is CallState.CALLING:
            self._learn_remote(leg_b, response)
            leg_b.pending_ack = leg_b.create_request("ACK", cseq=response.cseq[0])
            self.state = CallState.ANSWERED
            self.answered_at = now
            self._relay_to_a(response, now)
            self.ctx.observer.call_answered(CallAnswered(self.invite.call_id, now, now - self.offered_at))
        elif self.state is CallState.CANCELLING:
            # The answer crossed A's CANCEL: complete leg B's dialog and close it at once.
            self._learn_remote(leg_b, response)
            self._ack_and_bye(leg_b, response.cseq[0], now)
            self._finish(now)

    def _on_b_failure(self, status: int, now: float) -> None:
        if status in propagation.HUNT_ON and self.target_index < len(self.targets):
            self._invite_next_target(now)
            return
        self._fail(propagation.failure_status(status), now)

    def _fail(self, status: int, now: float) -> None:
        self._respond_a(make_response(self.invite, status, to_tag=self.legs[A].local_tag), now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, status, now))
        self._finish(now)

    def _relay_to_a(self, response: Response, now: float, status: int | None = None) -> None:
        leg_a = self.legs[A]
        self._respond_a(propagation.relay_response(response, self.invite, leg_a.local_tag, leg_a.contact, status), now)

    def _respond_a(self, response: Response, now: float) -> None:
        self.ctx.respond(self.invite_txn, response, now)

    @staticmethod
    def _learn_remote(leg: Leg, response: Response) -> None:
        # §12.1.2: the remote tag, target and route set (reversed Record-Route) come from the response.
        tag = response.to_tag
        if tag is None:
            return
        leg.remote_tag = tag
        contact = response.get("Contact")
        if contact is not None:
            leg.remote_target = parse_name_addr(contact).uri
        leg.route_set = tuple(reversed(response.get_all("Record-Route")))

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
            self._end("gateway", now)

    def on_reinvite_ack_missing(self, side: int, now: float) -> None:
        """Our 2xx to a re-INVITE from `side` was never ACKed (§13.3.1.4): end the session on both legs."""
        if self.state is not CallState.CONFIRMED:
            return
        other = self.legs[1 - side]
        self._ack_pending(other)  # the other leg's 2xx still gets its ACK before the BYE
        self._send_bye(other, now)
        self._send_bye(self.legs[side], now)
        self._end("gateway", now)

    # -- within the dialog ---------------------------------------------------------------
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
        leg.remote_cseq = number
        method = request.method
        if method == "BYE":
            self._on_bye(side, request, txn, now)
            return
        if method not in propagation.RELAYED_IN_DIALOG:
            response = make_response(request, 405)
            response.headers.append(("Allow", propagation.ALLOW))
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
        if method in TARGET_REFRESH:
            contact = request.get("Contact")
            if contact is not None:
                leg.remote_target = parse_name_addr(contact).uri  # §12.2.2: a target refresh request
        other = self.legs[1 - side]
        relayed = other.create_request(method)
        relayed.set("Max-Forwards", str((hops if hops is not None else 70) - 1))
        propagation.copy_body(request, relayed)
        out = self.ctx.request(relayed, other.next_hop(), now)
        if out is None:
            self.ctx.respond(txn, make_response(request, propagation.UNREACHABLE), now)
            return
        relay = Relay(side, txn, out)
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
            self._finish(now)  # A hung up too before its ACK: nobody is left to tell
            return
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
        self.ctx.respond(relay.transaction, out, now)
        if ok and response.cseq[1] in TARGET_REFRESH:
            self._learn_target(other, response)  # §12.2.1.2
            if response.cseq[1] == "INVITE":
                other.pending_ack = other.create_request("ACK", cseq=response.cseq[0])

    def on_relay_timeout(self, relay: Relay, now: float) -> None:
        """The other leg never answered a relayed request."""
        self.relays.discard(relay)
        if relay is self.reinvite:
            self.reinvite = None
        if relay.answered:
            return
        request = relay.transaction.request
        self.ctx.respond(relay.transaction, make_response(request, propagation.TIMEOUT), now)

    def _reply(self, txn: ServerTransaction, request: Request, status: int, now: float) -> None:
        self.ctx.respond(txn, make_response(request, status), now)

    @staticmethod
    def _learn_target(leg: Leg, response: Response) -> None:
        contact = response.get("Contact")
        if contact is not None:
            leg.remote_target = parse_name_addr(contact).uri

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

    def _end(self, ended_by: str, now: float) -> None:
        if self.state is CallState.ENDED:
            return
        self.ctx.observer.call_ended(CallEnded(self.invite.call_id, now - self.answered_at, ended_by, now))
        self._finish(now)

    def _finish(self, now: float) -> None:
        self.state = CallState.ENDED
        self._stop_timer_c()
        # §15.1.2: requests still pending when the session ends get their final answer now; the
        # other leg's late answer to them is absorbed (see `on_relay_response`).
        for relay in self.relays:
            relay.answered = True
            self.ctx.respond(relay.transaction, make_response(relay.transaction.request, 487), now)
        self.relays.clear()
        self.reinvite = None
        self.ctx.release(self)
