"""Hunting: a route's ring steps one after another, every target of a step at once (forking).

A `Hunt` is owned by one call and reports to it through `HuntOwner`: `early` (a provisional to relay
to the caller), `answered` (the first usable 2xx: the other legs of the step were cancelled) or
`failed` (every step is over: the status the caller hears). It INVITEs each target of a step on its
own leg B, bounds each leg with Timer C and the step with its ring time, and settles what arrives
from legs it gave up: their failures are absorbed, a 2xx is ACKed and ended with a BYE (§13.2.2.4).

Every leg's provisionals reach the caller, all under the one To tag of leg A (the caller sees one
early dialog whichever phone rings); the caller's early UPDATE/INFO go to the first leg that made an
early dialog (the owner's choice, see `Call.early`).

The caller hears `propagation.best_failure` of the failures of the step that ended the hunt, so a
route of one-target steps (static routes) answers the last failure, as sequential hunting always did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from gateway.b2bua import propagation
from gateway.b2bua.call_context import ABSORB, A, B, CallContext, Cancellable
from gateway.b2bua.events import LegOffered
from gateway.b2bua.leg import Leg, learn_remote
from gateway.b2bua.propagation import Failure, best_failure
from gateway.b2bua.session_timer import TimerOffer, write_offer
from gateway.b2bua.trunk_legs import caller_id_uri, challenge_answer
from gateway.routing.targets import RingStep, Target, TargetKind
from gateway.sip.errors import LocalProtocolError, RemoteProtocolError
from gateway.sip.message import Request, Response

if TYPE_CHECKING:
    from gateway.sip.transaction import ClientTransaction

log = logging.getLogger(__name__)

# §16.6 step 11: Timer C bounds how long leg B may ring; "greater than 3 minutes".
TIMER_C = 181.0
# What the caller hears when leg B's answer cannot be used (§21.5.3: an invalid response downstream).
BAD_GATEWAY = 502
# An employee with no phone registered is treated as a target that answered 480 (§21.4.18).
NOT_REGISTERED = propagation.UNAVAILABLE
# SPEC R3: an employee whose phone answers 486 is on a call the gateway cannot see (another line, a
# busy button): skipped like a member already on a call, so the queue's next step and its no-answer
# chain still ring (§21.4.24: the callee may be available elsewhere). A static route's 486 stays final.
EMPLOYEE_BUSY = frozenset({486})


class HuntOwner(Protocol):
    """What a hunt needs from the call that owns it."""

    invite: Request  # leg A's INVITE: its body, Max-Forwards and session-timer offer cross to leg B
    offer: TimerOffer
    callee: str  # the dialled user, kept on trunk targets
    legs: list[Leg]

    def early(self, leg: Leg, response: Response, now: float) -> None:
        """A provisional (not 100) of `leg`, whose early dialog is learnt, to relay to the caller."""

    def answered(self, leg: Leg, target: Target, response: Response, now: float) -> None:
        """`leg` answered with a usable 2xx; every other leg was cancelled."""

    def failed(self, status: int, now: float, extra: list[tuple[str, str]] | None) -> None:
        """Every step failed: answer the caller `status` (with `extra` headers of leg B's answer)."""

    def leg_ended(self, leg: Leg) -> None:
        """`leg` will carry nothing more of this call (it failed or was given up)."""


class HuntState(Enum):
    HUNTING = "hunting"
    ANSWERED = "answered"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the caller gave up: every leg cancelled, late answers settled


class Branch:
    """One leg B's INVITE: the leg, its client transaction, the target it rings and its Timer C.

    `pending` until the INVITE's final answer; `given_up` once the hunt stopped counting on it
    (ring time over, another leg answered, the caller cancelled) and sent its CANCEL.
    """

    __slots__ = ("leg", "txn", "target", "timer_c", "timer_c_fired", "pending", "given_up", "authenticated")

    def __init__(self, leg: Leg, txn: ClientTransaction, target: Target) -> None:
        self.leg = leg
        self.txn = txn
        self.target = target
        self.authenticated = False  # a trunk's 401/407 is answered once (SPEC R4)
        self.timer_c: Cancellable | None = None
        self.timer_c_fired = False
        self.pending = True
        self.given_up = False


class Hunt:
    """Rings `steps` for `owner`; see the module docstring."""

    __slots__ = ("ctx", "owner", "steps", "step", "state", "branches", "ringing", "failures", "step_timer", "headers")

    def __init__(
        self, ctx: CallContext, owner: HuntOwner, steps: tuple[RingStep, ...],
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.ctx = ctx
        self.headers = headers  # added to every INVITE (a transfer's recall says so in Alert-Info)
        self.owner = owner
        self.steps = steps
        self.step = 0  # the index of the next step to ring
        self.state = HuntState.HUNTING
        self.branches: list[Branch] = []  # every leg B ever sent, for late answers and the indexes
        self.ringing: list[Branch] = []  # the current step's
        self.failures: list[Failure] = []  # the current step's
        self.step_timer: Cancellable | None = None

    @property
    def live(self) -> bool:
        """Whether some leg B still waits for the final answer to its INVITE."""
        return any(branch.pending for branch in self.branches)

    def start(self, now: float) -> None:
        self._next_step(now)

    # -- ringing -----------------------------------------------------------------------------
    def _next_step(self, now: float) -> None:
        while self.step < len(self.steps):
            step = self.steps[self.step]
            self.step += 1
            self.ringing.clear()
            self.failures.clear()
            for target in step.targets:
                self._offer(target, now)
            if self.ringing:
                if step.ring_time is not None:
                    self.step_timer = self.ctx.schedule(now + step.ring_time, self._on_ring_time)
                return
            if not all(hunts_on for _, hunts_on, _ in self.failures):
                break
        self._fail(now)

    def _offer(self, target: Target, now: float) -> None:
        kind = target.kind
        if kind is TargetKind.EMPLOYEE:
            extension = target.extension or ""
            contacts = self.ctx.registered(extension, now) if extension else []
            if not contacts:
                self.failures.append((NOT_REGISTERED, True, None))
            for contact in contacts:
                self._invite(target, contact, extension, now)
        elif kind is TargetKind.PHONE:
            self._invite(target, target.uri, target.extension or self.owner.callee, now)
        elif kind is TargetKind.OUTSIDE:
            self._invite(target, target.uri, target.number or self.owner.callee, now)
        else:
            self._invite(target, target.uri, self.owner.callee, now)

    def _invite(self, target: Target, uri: str, callee: str, now: float) -> None:
        ctx, owner = self.ctx, self.owner
        try:
            target_uri, transport, hop, flow_host = ctx.resolve(uri, callee)
            contact = ctx.contact_for(transport)
        except (RemoteProtocolError, LocalProtocolError) as error:
            # A target no INVITE can be sent to (a malformed URI; a tls Contact and we do not listen
            # on tls) is unreachable; the others of the route still ring.
            log.warning("cannot ring %s: %s", target.describe(), error)
            self.failures.append((propagation.UNREACHABLE, True, None))
            return
        # The caller's identity crosses (propagation rule), unless the trunk needs ours (SPEC R4).
        identity = caller_id_uri(target, target_uri)
        leg = Leg(
            call_id=ctx.new_call_id(),
            local_tag=ctx.new_tag(),
            local_uri=identity or owner.legs[A].remote_uri,
            remote_uri=f"<{target_uri}>",
            remote_target=target_uri,
            transport=transport,
            contact=contact,
            # A registration's flow (NAT, TCP connection) carries the whole dialog; a stream
            # connection we opened ourselves is reused too (§18.2.2).
            peer=hop if flow_host is not None or transport != "udp" else None,
            flow_host=flow_host,
            flow_open=ctx.flow_open,
        )
        invite = self._leg_invite(leg, identity)
        txn = ctx.request(invite, hop, now)
        if txn is None:
            self.failures.append((propagation.UNREACHABLE, True, None))
            return
        branch = Branch(leg, txn, target)
        self.branches.append(branch)
        self.ringing.append(branch)
        ctx.bind_dialog(leg, owner, B)
        ctx.bind_transaction(txn, owner, branch)
        self._arm_timer_c(branch, now)
        ctx.observer.leg_offered(LegOffered(owner.invite.call_id, target, now))

    def _leg_invite(self, leg: Leg, identity: str | None) -> Request:
        """Leg B's INVITE: leg A's body, Max-Forwards and session-timer offer; our caller ID when set."""
        invite = leg.create_request("INVITE")
        a_invite = self.owner.invite
        hops = a_invite.max_forwards
        invite.set("Max-Forwards", str((hops if hops is not None else 70) - 1))
        if identity is not None:
            invite.set("P-Asserted-Identity", identity)  # RFC 3325: the trunk trusts us to assert it
        propagation.copy_body(a_invite, invite)
        write_offer(self.owner.offer, invite)
        if self.headers:
            invite.headers += self.headers
        return invite

    def _answer_challenge(self, branch: Branch, response: Response, now: float) -> bool:
        """A trunk's 401/407 to leg B's INVITE, answered once with the trunk's credentials (SPEC R4).
        False when it cannot be (no credentials, an unreadable challenge, already answered)."""
        target, leg = branch.target, branch.leg
        if branch.authenticated or target.trunk_id is None:
            return False
        credentials = self.ctx.trunk_credentials(target.trunk_id)
        answer = challenge_answer(response, leg.remote_target, credentials, target.trunk_id) if credentials else None
        if answer is None:
            return False
        invite = self._leg_invite(leg, caller_id_uri(target, leg.remote_target))
        invite.set(*answer)
        txn = self.ctx.request(invite, leg.next_hop(), now)
        if txn is None:
            return False
        branch.authenticated = True
        branch.txn = txn
        branch.pending = True
        self.ctx.bind_transaction(txn, self.owner, branch)
        self._arm_timer_c(branch, now)
        return True

    # -- timers --------------------------------------------------------------------------------
    def _arm_timer_c(self, branch: Branch, now: float) -> None:
        if branch.timer_c is not None:
            branch.timer_c.cancel()
        branch.timer_c = self.ctx.schedule(now + TIMER_C, self._timer_c_of(branch))

    def _timer_c_of(self, branch: Branch) -> Callable[[float], None]:
        def fire(now: float) -> None:
            # §16.8: the leg rang too long; CANCEL it and treat its end as a 408 (see on_response).
            branch.timer_c = None
            if branch.pending and not branch.given_up:
                branch.timer_c_fired = True
                self.ctx.cancel(branch.txn, now)

        return fire

    @staticmethod
    def _stop_timer_c(branch: Branch) -> None:
        if branch.timer_c is not None:
            branch.timer_c.cancel()
            branch.timer_c = None

    def _stop_step_timer(self) -> None:
        if self.step_timer is not None:
            self.step_timer.cancel()
            self.step_timer = None

    def _on_ring_time(self, now: float) -> None:
        self.step_timer = None
        if self.state is not HuntState.HUNTING:
            return
        for branch in self.ringing:
            if branch.pending and not branch.given_up:
                self._give_up(branch, now)
                # Nobody answered in time: as Timer C, a 408 (§16.7 step 2), which hunts on.
                self.failures.append((propagation.TIMEOUT, True, None))
        self._step_over(now)

    def _give_up(self, branch: Branch, now: float) -> None:
        branch.given_up = True
        self._stop_timer_c(branch)
        self.ctx.cancel(branch.txn, now)
        self.owner.leg_ended(branch.leg)

    # -- leg B's answers -----------------------------------------------------------------------
    def on_response(self, branch: Branch, response: Response, now: float) -> None:
        """A response of `branch`'s leg B to its INVITE (the first 2xx too; later ones: `stray_2xx`)."""
        status = response.status
        counted = branch.pending and not branch.given_up and self.state is HuntState.HUNTING
        if status < 200:
            if status != 100 and counted:
                if not branch.timer_c_fired:
                    self._arm_timer_c(branch, now)  # §16.7 step 2: every provisional restarts Timer C
                learn_remote(branch.leg, response)
                self.owner.early(branch.leg, response, now)
            return
        branch.pending = False
        self._stop_timer_c(branch)
        if status < 300:
            if counted:
                self._answer(branch, response, now)
            else:
                # It answered a CANCEL we sent (given up, or the caller gave up): end it at once.
                self._end_stray(branch.leg, response, now)
            return
        if counted and status in (401, 407) and self._answer_challenge(branch, response, now):
            return
        if counted:
            min_se = response.get("Min-SE") if status == 422 else None
            extra = [("Min-SE", min_se)] if min_se is not None else None  # RFC 4028 §6: try with it
            # §16.7 step 2: after Timer C the 487 of our own CANCEL counts as a 408.
            status = propagation.TIMEOUT if branch.timer_c_fired and status == 487 else status
            self._branch_failed(branch, (propagation.failure_status(status), _hunts_on(branch.target, status), extra),
                                now)

    def on_failure(self, branch: Branch, status: int, now: float) -> None:
        """`branch`'s INVITE ended without an answer: Timer B (408) or a transport error (503, §8.1.3.1).
        The gateway's own verdict, which the caller hears unmapped."""
        branch.pending = False
        self._stop_timer_c(branch)
        if not branch.given_up and self.state is HuntState.HUNTING:
            self._branch_failed(branch, (status, status in propagation.HUNT_ON, None), now)

    def _branch_failed(self, branch: Branch, failure: Failure, now: float) -> None:
        self.failures.append(failure)
        self.owner.leg_ended(branch.leg)
        for other in self.ringing:
            if other.pending and not other.given_up:
                return
        self._step_over(now)

    def _step_over(self, now: float) -> None:
        """Every leg of the step failed or was given up: the next step, or the caller's answer."""
        self._stop_step_timer()
        if self.step < len(self.steps) and all(hunts_on for _, hunts_on, _ in self.failures):
            self._next_step(now)
        else:
            self._fail(now)

    def _fail(self, now: float) -> None:
        self.state = HuntState.FAILED
        status, extra = best_failure(self.failures)
        self.owner.failed(status, now, extra)

    def _answer(self, branch: Branch, response: Response, now: float) -> None:
        leg = branch.leg
        self._stop_step_timer()
        for other in self.ringing:
            if other is not branch and other.pending and not other.given_up:
                self._give_up(other, now)  # §16.7 step 10 (a forking proxy's rule): CANCEL the rest
        if not learn_remote(leg, response):
            # §12.1.2: no request could ever reach that dialog. §13.2.2.4: ACK it all the same, then
            # BYE, both where the INVITE went; the caller hears 502. No hunting on: the target did
            # answer, and ringing the next phone for a call someone picked up would be worse.
            self._ack_and_bye(leg, response.cseq[0], now)
            self.state = HuntState.FAILED
            self.owner.failed(BAD_GATEWAY, now, None)
            return
        self.state = HuntState.ANSWERED
        self.owner.answered(leg, branch.target, response, now)

    # -- the caller gives up, the callee hangs up early, late answers -----------------------------
    def cancel(self, now: float) -> None:
        """The caller gave up: CANCEL every leg still ringing; their late answers are settled."""
        self.state = HuntState.CANCELLED
        self._stop_step_timer()
        for branch in self.branches:
            self._stop_timer_c(branch)
            if branch.pending and not branch.given_up:
                branch.given_up = True
                self.ctx.cancel(branch.txn, now)

    def cancel_leg(self, leg: Leg, now: float) -> None:
        """CANCEL `leg`'s INVITE (its callee sent BYE on the early dialog, §15); its 487 fails it."""
        for branch in self.ringing:
            if branch.leg is leg and branch.pending and not branch.given_up:
                self.ctx.cancel(branch.txn, now)

    def stray_2xx(self, response: Response, now: float) -> None:
        """A 2xx of a dialog the call does not use (another fork of a leg, or a leg given up): ACK and
        BYE it at once (§13.2.2.4), or that callee would sit in a call nobody hears."""
        call_id = response.call_id
        for branch in self.branches:
            if branch.leg.call_id == call_id:
                self._end_stray(branch.leg, response, now)
                return

    def _end_stray(self, leg: Leg, response: Response, now: float) -> None:
        stray = Leg(
            call_id=leg.call_id, local_tag=leg.local_tag, local_uri=leg.local_uri, remote_uri=leg.remote_uri,
            remote_target=leg.remote_target, transport=leg.transport, contact=leg.contact,
            local_cseq=max(leg.local_cseq, response.cseq[0]), peer=leg.peer, flow_host=leg.flow_host,
            flow_open=leg.flow_open,
        )
        learn_remote(stray, response)
        if stray.remote_tag is not None:
            self._ack_and_bye(stray, response.cseq[0], now)

    def _ack_and_bye(self, leg: Leg, cseq: int, now: float) -> None:
        ack = leg.create_request("ACK", cseq=cseq)
        self.ctx.stateless(ack, leg.next_hop())
        leg.last_ack = ack
        if leg.remote_tag is None:
            return
        txn = self.ctx.request(leg.create_request("BYE"), leg.next_hop(), now)
        if txn is not None:
            self.ctx.bind_transaction(txn, self.owner, ABSORB)

    def stop(self) -> None:
        """The call is over: no timer of the hunt fires any more."""
        self._stop_step_timer()
        for branch in self.branches:
            self._stop_timer_c(branch)


def _hunts_on(target: Target, status: int) -> bool:
    """Whether leg B's failure `status` lets the hunt ring the next step (see EMPLOYEE_BUSY)."""
    return status in propagation.HUNT_ON or (target.kind is TargetKind.EMPLOYEE and status in EMPLOYEE_BUSY)
