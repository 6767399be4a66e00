"""The legs a transfer adds to a call (`gateway.b2bua.transfer`) and the re-INVITEs that join them.

`TransferLeg` is the new leg of a blind transfer (or its recall) while its hunt rings it; `Reoffer` the
remaining party's re-INVITE onto the new leg; `Consulted` the consulted colleague's re-INVITE of an
attended transfer. The SDP shuffle of a B2BUA: the party joined is offered the other's current SDP,
and its answer is offered to the other in turn.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from gateway.b2bua.call_context import Awaited, CallState
from gateway.b2bua.events import RECALL
from gateway.b2bua.hunt import Branch, Hunt
from gateway.b2bua.leg import Leg, contact_target, remember_sdp
from gateway.b2bua.session_timer import NO_OFFER
from gateway.routing.targets import Target
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.b2bua.call import Call
    from gateway.b2bua.transfer import Transfer
    from gateway.sip.transaction import ServerTransaction

log = logging.getLogger(__name__)

REOFFER_TRIES = 3  # a re-INVITE answered 491 is sent again twice at most


def reoffer(call: Call, leg: Leg, sdp: bytes, purpose: Awaited, now: float) -> None:
    """re-INVITE `leg` with `sdp` (the SDP shuffle of a B2BUA joining two parties)."""
    invite = leg.create_request("INVITE")
    if sdp:
        invite.headers.append(("Content-Type", "application/sdp"))
        invite.body = sdp
    txn = call.ctx.request(invite, leg.next_hop(), now)
    if txn is None:
        purpose.on_failure(503, now)
        return
    call.ctx.bind_transaction(txn, call, purpose)


def ack_2xx(call: Call, leg: Leg, response: Response) -> None:
    target = contact_target(response)
    if target is not None:
        leg.refresh_target(target)  # §12.2.1.2: a re-INVITE's 2xx refreshes the target
    ack = leg.create_request("ACK", cseq=response.cseq[0])
    call.ctx.stateless(ack, leg.next_hop())
    leg.last_ack = ack


class Reoffer(Awaited):
    """The remaining party's re-INVITE onto the new leg, with `sdp`; its 2xx is ACKed at once. A 491 (its
    own re-INVITE crossed ours) is tried again a little later, as §14.1 says, a few times."""

    __slots__ = ("call", "leg", "sdp", "tries")

    def __init__(self, call: Call, leg: Leg, sdp: bytes, tries: int = 1) -> None:
        self.call = call
        self.leg = leg
        self.sdp = sdp
        self.tries = tries

    def on_response(self, response: Response, now: float) -> None:
        status = response.status
        if 200 <= status < 300:
            ack_2xx(self.call, self.leg, response)
            remember_sdp(self.leg, response)
        elif status == 491 and self.tries < REOFFER_TRIES:
            # §14.1: try again after a random wait; 2.1-4 s, the longer of its two ranges, whoever chose the Call-ID.
            self.call.ctx.schedule(now + random.uniform(2.1, 4.0), self._again)
        elif status >= 300:
            log.warning("call %s: the remaining party refused the transfer's re-INVITE with %d",
                        self.call.invite.call_id, status)

    def _again(self, now: float) -> None:
        call = self.call
        if call.state is CallState.CONFIRMED and self.leg in call.legs:
            reoffer(call, self.leg, self.sdp, Reoffer(call, self.leg, self.sdp, self.tries + 1), now)

    def on_failure(self, status: int, now: float) -> None:
        log.warning("call %s: the transfer's re-INVITE got no answer (%d)", self.call.invite.call_id, status)


class Consulted(Awaited):
    """The consulted colleague's re-INVITE with the remaining party's SDP (attended transfer)."""

    __slots__ = ("transfer", "other", "side")

    def __init__(self, transfer: Transfer, other: Call, side: int) -> None:
        self.transfer = transfer
        self.other = other
        self.side = side  # the transferor's side in the consultation call

    def on_response(self, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            return
        if status < 300:
            ack_2xx(self.transfer.call, self.other.legs[1 - self.side], response)  # §13.2.2.4, whatever comes next
        if status >= 300 or self.other.state is not CallState.CONFIRMED or self.transfer.call.transfer is None:
            self.transfer.consultation_refused(status if status >= 300 else 481, now)
            return
        self.transfer.consulted(self.other, self.side, response, now)

    def on_failure(self, status: int, now: float) -> None:
        self.transfer.consultation_refused(status, now)


class TransferLeg:
    """The new leg of a blind transfer (or its recall) being rung: the `HuntOwner` of its hunt, and
    what the controller hands that leg's answers and requests to until it joins the call."""

    __slots__ = ("transfer", "kind", "callee", "invite", "hunt", "legs")

    offer = NO_OFFER  # the new leg negotiates no session timer of its own

    def __init__(self, transfer: Transfer, kind: str, callee: str) -> None:
        self.transfer = transfer
        self.kind = kind
        self.callee = callee
        call = transfer.call
        # What the hunt offers: the remaining party's current SDP, under the call's Call-ID (its events).
        self.invite = Request("INVITE", "sip:transfer.invalid", [("Call-ID", call.invite.call_id), ("CSeq", "1 INVITE")])
        sdp = transfer.remaining.sdp
        if sdp:
            self.invite.headers.append(("Content-Type", "application/sdp"))
            self.invite.body = sdp
        self.hunt: Hunt
        remaining = transfer.remaining
        self.legs = [remaining, remaining]  # the remaining party's identity is what the target sees

    # -- HuntOwner ------------------------------------------------------------------------------------
    def early(self, leg: Leg, response: Response, now: float) -> None:
        if self.kind != RECALL:
            self.transfer.progress(response.status, now)

    def answered(self, leg: Leg, target: Target, response: Response, now: float) -> None:
        self.transfer.answered(self, leg, target, response, now)

    def failed(self, status: int, now: float, extra: list[tuple[str, str]] | None) -> None:
        self.transfer.failed(self, status, now)

    def leg_ended(self, leg: Leg) -> None:
        return None

    # -- what the controller hands the owner of a leg's transactions and dialog -------------------------
    def on_branch_response(self, branch: Branch, response: Response, now: float) -> None:
        self.hunt.on_response(branch, response, now)

    def on_branch_failure(self, branch: Branch, status: int, now: float) -> None:
        self.hunt.on_failure(branch, status, now)

    def on_2xx_retransmission(self, side: int, response: Response, now: float) -> None:
        self.hunt.stray_2xx(response, now)

    def on_request(self, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
        # §15: the callee of an early dialog must not send BYE; nothing else is carried before the join.
        self.transfer.call.ctx.respond(txn, make_response(request, 481), now)
