"""Transfers (SPEC R5): a REFER from an employee's phone in a call, carried out by the gateway itself.

The REFER is never relayed to the other leg: the gateway answers 202, keeps the REFER's implicit
subscription on the transferor's dialog (NOTIFYs of `message/sipfrag` progress: 100, 180, then 200
or the failure, the last one terminating it; see `refer`) and does the transfer as a B2BUA:

- blind (Refer-To a user): the target comes from `CallContext.transfer_target` (an extension's
  employee; an outside number through a trunk) and is rung by a `Hunt` of its own, offered the
  remaining party's current SDP. Its answer is ACKed, the remaining party is re-INVITEd with that
  answer, and the transferor's leg is released (BYE). The remaining party stays bridged to the
  transferor while the target rings; when nobody answers, a transferor still in the call just hears
  the failure NOTIFY, one who hung up meanwhile is rung again for a ring time (the recall, with
  `Alert-Info: <urn:alert:service:recall:transfer>`, RFC 7462), and when that is not answered the call ends.
- attended (Refer-To with Replaces naming the transferor's consultation dialog, a second call through
  the gateway): the consulted colleague's leg is re-INVITEd with the remaining party's SDP, then the
  remaining party with the colleague's answer; both of the transferor's legs are released and the
  consultation call ends as part of this one (`ENDED_TRANSFERRED`).

The dialogs are the call's `Leg`s (`gateway.b2bua.leg`): NOTIFY and the re-INVITEs are built there.
A REFER from a phone in no dialog of the gateway is answered 481 by the controller; from the leg of
a party that is no employee's phone (the outside caller), 403.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.b2bua.call_context import ABSORB, A, CallState, Party
from gateway.b2bua.events import (
    ATTENDED,
    BLIND,
    ENDED_TRANSFER_UNANSWERED,
    ENDED_TRANSFERRED,
    RECALL,
    CallEnded,
    CallTransferred,
)
from gateway.b2bua.hunt import Hunt
from gateway.b2bua.leg import Leg, remember_sdp, uri_target
from gateway.b2bua.refer import ReferTo, notify, read_refer_to
from gateway.b2bua.transfer_legs import Consulted, Reoffer, TransferLeg, reoffer
from gateway.routing.targets import RingStep, Target, TargetKind
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from gateway.b2bua.call import Call
    from gateway.sip.transaction import ServerTransaction

log = logging.getLogger(__name__)

RECALL_ALERT = ("Alert-Info", "<urn:alert:service:recall:transfer>")  # RFC 7462 §4.2.3
RULE = "R5"


def party_of(target: Target | None) -> Party | None:
    """The employee's phone a routing target rang, or None when it is no employee's (a trunk, a URI)."""
    if target is None:
        return None
    if target.employee_id is not None or target.kind is TargetKind.EMPLOYEE:
        return Party(target.employee_id, target.extension)
    if target.kind is TargetKind.PHONE and target.extension:
        return Party(None, target.extension)  # a static route's registered phone: the PBX's own
    return None


def _same_party(one: Party | None, other: Party | None) -> bool:
    if one is None or other is None:
        return False
    if one.employee_id is not None and other.employee_id is not None:
        return one.employee_id == other.employee_id
    return one.extension is not None and one.extension == other.extension


def _same_phone(one: Leg, other: Leg) -> bool:
    """Whether two legs reach the same phone (its Contact's host and port): a consultation call placed
    from a trusted address is no authenticated employee's, but the transferor's phone all the same."""
    try:
        return uri_target(one.remote_target, "udp")[1:] == uri_target(other.remote_target, "udp")[1:]
    except RemoteProtocolError:
        return False


def on_refer(call: Call, side: int, request: Request, txn: ServerTransaction, now: float) -> None:
    """A REFER on `call`'s leg `side` (its dialog already checked by the relay)."""
    ctx = call.ctx
    refusal = _refusal(call, side)
    if refusal is not None:
        ctx.respond(txn, make_response(request, refusal[0], refusal[1]), now)
        return
    try:
        refer_to = read_refer_to(request)
    except RemoteProtocolError as error:
        ctx.respond(txn, make_response(request, error.status_hint, str(error)), now)
        return
    response = make_response(request, 202)
    response.headers.append(("Contact", call.legs[side].contact))
    ctx.respond(txn, response, now)
    call.transfer = Transfer(call, side, refer_to, request.cseq[0])
    call.transfer.start(now)


def _refusal(call: Call, side: int) -> tuple[int, str] | None:
    if call.parties[side] is None:
        return 403, "Forbidden (only an employee's phone in the call may transfer it)"
    if call.state is not CallState.CONFIRMED:
        return 491, "Request Pending (the call is not connected yet)"
    if call.transfer is not None:
        return 491, "Request Pending (a transfer of this call is in progress)"
    return None


class Transfer:
    """One REFER of `call` from side `side`, carried out; see the module docstring."""

    __slots__ = ("call", "side", "refer_to", "refer_cseq", "transferor", "leg", "present", "subscribed",
                 "ringing", "notified", "consultation")

    def __init__(self, call: Call, side: int, refer_to: ReferTo, refer_cseq: int) -> None:
        self.call = call
        self.side = side  # the transferor's side; the remaining party is on the other one
        self.refer_to = refer_to
        self.refer_cseq = refer_cseq
        self.transferor = call.parties[side]
        self.leg = call.legs[side]  # the transferor's leg, which carries the subscription
        self.present = True  # the transferor has not hung up
        self.subscribed = True  # NOTIFYs still go (until the final one, or the transferor's BYE)
        self.ringing: TransferLeg | None = None
        self.notified: set[int] = set()
        self.consultation: Call | None = None

    @property
    def remaining(self) -> Leg:
        return self.call.legs[1 - self.side]

    def start(self, now: float) -> None:
        self._notify(100, now)
        if self.refer_to.replaces is not None:
            self._attended(now)
            return
        target = self.call.ctx.transfer_target(self.refer_to.user, self._transferor_id)
        if target is None:
            self._failed(404, now)
            return
        self._ring(target, BLIND, now)

    @property
    def _transferor_id(self) -> int | None:
        return self.transferor.employee_id if self.transferor is not None else None

    # -- the implicit subscription ---------------------------------------------------------------
    def _notify(self, status: int, now: float, *, final: bool = False) -> None:
        if not self.subscribed or status in self.notified:
            return
        self.notified.add(status)
        self.subscribed = not final
        request = notify(self.leg, status, final=final, refer_cseq=self.refer_cseq)
        txn = self.call.ctx.request(request, self.leg.next_hop(), now)
        if txn is not None:
            self.call.ctx.bind_transaction(txn, self.call, ABSORB)

    def progress(self, status: int, now: float) -> None:
        """A provisional of the target's leg (180, 183) reported to the transferor."""
        self._notify(status, now)

    # -- blind ------------------------------------------------------------------------------------
    def _ring(self, target: Target, kind: str, now: float) -> None:
        headers = (RECALL_ALERT,) if kind == RECALL else ()
        leg = TransferLeg(self, kind, self.refer_to.user if kind != RECALL else (target.extension or ""))
        leg.hunt = Hunt(self.call.ctx, leg, (RingStep((target,), self.call.ctx.transfer_ring_time, (RULE,)),), headers)
        self.ringing = leg
        leg.hunt.start(now)

    def answered(self, owner: TransferLeg, leg: Leg, target: Target, response: Response, now: float) -> None:
        ack = leg.create_request("ACK", cseq=response.cseq[0])
        self.call.ctx.stateless(ack, leg.next_hop())
        leg.last_ack = ack
        remember_sdp(leg, response)
        self._notify(200, now, final=True)
        self.ringing = None
        self._join(leg, party_of(target) or Party(target.employee_id, target.extension), owner.kind, now)
        # The hunt of the transfer is over: its legs' late answers are settled through the call's.
        self.call.former_hunts.append(owner.hunt)

    def failed(self, owner: TransferLeg, status: int, now: float) -> None:
        self.ringing = None
        self.call.former_hunts.append(owner.hunt)
        if owner.kind == RECALL:
            self._end_unanswered(now)
            return
        self._failed(status, now)

    def _failed(self, status: int, now: float) -> None:
        self._notify(status, now, final=True)
        if self.present:
            self.call.transfer = None  # the transferor is still in the call: it goes on as it was
            return
        transferor = self.transferor
        if transferor is None or not transferor.extension:
            self._end_unanswered(now)
            return
        # R5: a blind transfer nobody answered rings the transferring employee again.
        extension = transferor.extension
        recall = Target.employee(transferor.employee_id, extension) if transferor.employee_id is not None \
            else Target(TargetKind.EMPLOYEE, extension=extension)
        self._ring(recall, RECALL, now)

    def _end_unanswered(self, now: float) -> None:
        call = self.call
        call.transfer = None
        call._send_bye(self.remaining, now)
        call._end("gateway", now, ENDED_TRANSFER_UNANSWERED)

    # -- attended ---------------------------------------------------------------------------------
    def _attended(self, now: float) -> None:
        replaces = self.refer_to.replaces
        assert replaces is not None
        found = self.call.ctx.find_dialog(replaces.call_id, (replaces.to_tag, replaces.from_tag))
        if found is None or found[0] is self.call:
            self._failed(481, now)
            return
        other, side = found
        if other.legs[side].remote_tag not in (replaces.to_tag, replaces.from_tag):
            self._failed(481, now)  # the Call-ID and our tag match, the phone's tag does not: another dialog
            return
        if other.state is not CallState.CONFIRMED or other.transfer is not None:
            self._failed(491, now)
            return
        if not (_same_party(other.parties[side], self.transferor) or _same_phone(other.legs[side], self.leg)):
            self._failed(403, now)  # a dialog that is not the transferor's own consultation
            return
        self.consultation = other
        colleague = other.legs[1 - side]
        reoffer(self.call, colleague, self.remaining.sdp, Consulted(self, other, side), now)

    def consulted(self, other: Call, side: int, response: Response, now: float) -> None:
        """The consulted colleague accepted the remaining party's SDP: join them, end the consultation."""
        colleague, own_leg = other.legs[1 - side], other.legs[side]
        remember_sdp(colleague, response)
        self._notify(200, now, final=True)
        party = other.parties[1 - side]
        # The colleague's leg moves to this call: the consultation call forgets it before it ends.
        other.legs = [own_leg, own_leg]
        if other.hunt is not None:
            other.hunt.branches = [branch for branch in other.hunt.branches if branch.leg is not colleague]
        other._send_bye(own_leg, now)
        other.ctx.observer.call_ended(CallEnded(
            other.invite.call_id, now - other.answered_at, "gateway", now, ENDED_TRANSFERRED))
        other._finish(now)
        self._join(colleague, party, ATTENDED, now, consultation=other.invite.call_id)

    def consultation_refused(self, status: int, now: float) -> None:
        self.consultation = None
        self._failed(status if status >= 300 else 500, now)

    # -- the join -----------------------------------------------------------------------------------
    def _join(self, leg: Leg, party: Party | None, kind: str, now: float, consultation: str | None = None) -> None:
        """`leg` takes the transferor's place in the call: release the transferor, re-INVITE the other."""
        call, ctx, side = self.call, self.call.ctx, self.side
        old = call.legs[side]
        if self.present:
            call._send_bye(old, now)
        ctx.unbind_dialog(old)
        call.legs[side] = leg
        ctx.bind_dialog(leg, call, side)
        _swap_party(call, side, party)
        call.transfer = None
        ctx.observer.call_transferred(CallTransferred(
            call.invite.call_id, self._transferor_id, party.employee_id if party is not None else None, now,
            kind, consultation,
        ))
        reoffer(call, self.remaining, leg.sdp, Reoffer(call, self.remaining, leg.sdp), now)

    # -- the transferor or the remaining party hangs up -----------------------------------------------
    def on_bye(self, side: int, now: float) -> None:
        """A BYE (answered already) from `side` while the transfer goes on."""
        call = self.call
        if side == self.side:
            self.present = self.subscribed = False  # the dialog, and its subscription, are over
            call.ctx.unbind_dialog(self.leg)
            return
        self.stop(now)
        if self.present:
            call._send_bye(self.leg, now)
        call._end("caller" if side == A else "callee", now)

    def stop(self, now: float) -> None:
        """The call ends: whatever still rings is cancelled."""
        ringing = self.ringing
        if ringing is not None:
            self.ringing = None
            ringing.hunt.cancel(now)
            ringing.hunt.stop()
            self.call.former_hunts.append(ringing.hunt)


def _swap_party(call: Call, side: int, party: Party | None) -> None:
    """The employee on `side` changes: who the call keeps busy (R3) and who answered it."""
    old = call.parties[side]
    engaged = list(call.engaged)
    if old is not None and old.employee_id in engaged:
        engaged.remove(old.employee_id)
        call.ctx.engaged(old.employee_id, -1)
    if party is not None and party.employee_id is not None:
        engaged.append(party.employee_id)
        call.ctx.engaged(party.employee_id, 1)
    call.engaged = tuple(engaged)
    call.parties[side] = party
    if side != A and party is not None:
        call.answered_by = Target(TargetKind.EMPLOYEE, employee_id=party.employee_id, extension=party.extension)
