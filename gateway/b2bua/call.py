"""One call through the B2BUA: leg A (we are its UAS) bridged to leg B (we are its UAC).

A plain state machine driven by the controller with endpoint events; it never waits, owns no
task, and reaches SIP only through its `CallContext`. What crosses between legs is decided in
`propagation`.
"""

from __future__ import annotations

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

    def unbind_dialog(self, leg: Leg) -> None: ...

    def release(self, call: Call) -> None: ...


class Relay:
    """An in-dialog request relayed from leg `from_side`; its answer goes back through `transaction`."""

    __slots__ = ("from_side", "transaction")

    def __init__(self, from_side: int, transaction: ServerTransaction) -> None:
        self.from_side = from_side
        self.transaction = transaction


INITIAL_INVITE = "invite"
ABSORB = "absorb"


class Call:
    """Bridges one inbound INVITE to the route's targets, hunting in order on retryable failures."""

    __slots__ = (
        "ctx", "state", "legs", "invite", "invite_txn", "b_txn", "targets", "target_index",
        "offered_at", "answered_at", "callee", "rule_ids",
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
                self.ctx.unbind_dialog(self.legs[B])  # the failed target's dialog is over
            self.legs[B] = leg_b
            self.b_txn = txn
            self.ctx.bind_dialog(leg_b, self, B)
            self.ctx.bind_transaction(txn, self, INITIAL_INVITE)
            return
        self._fail(propagation.UNREACHABLE, now)

    # -- leg B's answer to the INVITE ----------------------------------------------------
    def on_invite_response(self, response: Response, now: float) -> None:
        """A response of leg B to our INVITE (also 2xx retransmissions)."""
        status = response.status
        if status < 200:
            if status != 100 and self.state is CallState.CALLING:
                self._learn_remote(self.legs[B], response)
                self._relay_to_a(response, now)
        elif status < 300:
            self._on_b_answer(response, now)
        elif self.state is CallState.CALLING:
            self._on_b_failure(status, now)
        elif self.state is CallState.CANCELLING:
            self._finish()

    def on_invite_timeout(self, now: float) -> None:
        """Timer B: nobody answered on leg B."""
        if self.state is CallState.CALLING:
            self._on_b_failure(propagation.TIMEOUT, now)
        elif self.state is CallState.CANCELLING:
            self._finish()

    def on_2xx_retransmission(self, side: int, response: Response) -> None:
        """§13.2.2.4: a retransmitted 2xx means our ACK was lost; send the same ACK again."""
        leg = self.legs[side]
        ack = leg.last_ack
        if ack is not None and ack.cseq[0] == response.cseq[0]:
            self.ctx.stateless(ack, leg.next_hop())

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
            self._finish()

    def _on_b_failure(self, status: int, now: float) -> None:
        if status in propagation.HUNT_ON and self.target_index < len(self.targets):
            self._invite_next_target(now)
            return
        self._fail(propagation.failure_status(status), now)

    def _fail(self, status: int, now: float) -> None:
        self._respond_a(make_response(self.invite, status, to_tag=self.legs[A].local_tag), now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, status, now))
        self._finish()

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
        self._respond_a(make_response(self.invite, 487, to_tag=self.legs[A].local_tag), now)
        self.ctx.observer.call_failed(CallFailed(self.invite.call_id, 487, now))
        if self.b_txn is not None:
            self.ctx.cancel(self.b_txn, now)

    def on_ack_missing(self, now: float) -> None:
        """Our 2xx to A was never ACKed (§13.3.1.4): close both legs."""
        if self.state is CallState.HUNG_UP:
            self._send_bye(self.legs[A], now)  # §15: the server transaction timed out
            self._finish()
        elif self.state is CallState.ANSWERED:
            leg_b = self.legs[B]
            pending = leg_b.pending_ack
            if pending is not None:
                self.ctx.stateless(pending, leg_b.next_hop())
                leg_b.pending_ack = None
            self._send_bye(leg_b, now)
            self._send_bye(self.legs[A], now)  # §13.3.1.4: the session SHOULD be ended with a BYE
            self._end("gateway", now)

    # -- within the dialog ---------------------------------------------------------------
    def on_ack(self, side: int, ack: Request, now: float) -> None:
        """An ACK for a 2xx arrived on `side`; the other leg's pending ACK goes out, with its body."""
        if self.state is CallState.HUNG_UP and side == A:
            self._send_bye(self.legs[A], now)
            self._finish()
            return
        other = self.legs[1 - side]
        pending = other.pending_ack
        if pending is None:
            return
        propagation.copy_body(ack, pending)
        self.ctx.stateless(pending, other.next_hop())
        other.last_ack, other.pending_ack = pending, None
        if side == A and self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED

    def on_request(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
        """An in-dialog request from `side`: BYE ends the call, the rest is relayed."""
        method = request.method
        if method == "BYE":
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
                self._finish()  # A hung up too before its ACK: nobody is left to tell
                return
            if self.state is CallState.ANSWERED and side == B:
                # §15: leg A's callee MUST NOT send BYE before A's ACK of the 2xx (or its timeout).
                self._ack_pending(self.legs[B])
                self.ctx.observer.call_ended(CallEnded(self.invite.call_id, now - self.answered_at, "callee", now))
                self.state = CallState.HUNG_UP
                return
            if self.state is CallState.ANSWERED and side == A:
                self.on_ack(A, Request("ACK", ""), now)
            self._send_bye(self.legs[1 - side], now)
            self._end("caller" if side == A else "callee", now)
            return
        if method not in propagation.RELAYED_IN_DIALOG or self.state is not CallState.CONFIRMED:
            status = 405 if method not in propagation.RELAYED_IN_DIALOG else 491
            response = make_response(request, status)
            if status == 405:
                response.headers.append(("Allow", propagation.ALLOW))
            self.ctx.respond(txn, response, now)
            return
        other = self.legs[1 - side]
        relayed = other.create_request(method)
        propagation.copy_body(request, relayed)
        out = self.ctx.request(relayed, other.next_hop(), now)
        if out is None:
            self.ctx.respond(txn, make_response(request, propagation.UNREACHABLE), now)
            return
        self.ctx.bind_transaction(out, self, Relay(side, txn))

    def on_relay_response(self, relay: Relay, response: Response, now: float) -> None:
        """The other leg answered a relayed request: answer the original one alike."""
        side = relay.from_side
        leg = self.legs[side]
        status = response.status
        if status == 100:
            return
        out = propagation.relay_response(response, relay.transaction.request, leg.local_tag, leg.contact)
        self.ctx.respond(relay.transaction, out, now)
        if 200 <= status < 300 and response.cseq[1] == "INVITE":
            other = self.legs[1 - side]
            self._learn_target(other, response)
            other.pending_ack = other.create_request("ACK", cseq=response.cseq[0])

    def on_relay_timeout(self, relay: Relay, now: float) -> None:
        """The other leg never answered a relayed request."""
        request = relay.transaction.request
        self.ctx.respond(relay.transaction, make_response(request, propagation.TIMEOUT), now)

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

    def _ack_and_bye(self, leg: Leg, cseq: int, now: float) -> None:
        ack = leg.create_request("ACK", cseq=cseq)
        self.ctx.stateless(ack, leg.next_hop())
        leg.last_ack = ack
        self._send_bye(leg, now)

    def _end(self, ended_by: str, now: float) -> None:
        if self.state is CallState.ENDED:
            return
        self.ctx.observer.call_ended(CallEnded(self.invite.call_id, now - self.answered_at, ended_by, now))
        self._finish()

    def _finish(self) -> None:
        self.state = CallState.ENDED
        self.ctx.release(self)
