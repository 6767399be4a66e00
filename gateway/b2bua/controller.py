"""The B2BUA's front door: endpoint events in, calls, registrations and local answers out.

It decides nothing about where calls go (routing does) nor what crosses legs (propagation
does); it finds the call an event belongs to, or answers requests addressed to the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.b2bua import propagation
from gateway.b2bua.call import Branch, Call, Relay
from gateway.b2bua.call_context import Awaited, Destination, TransferTarget
from gateway.b2bua.destinations import Destinations
from gateway.b2bua.flows import NAT_CONTACTS, NAT_SOURCE
from gateway.b2bua.leg import Leg, contact_target, learn_remote, strip_tag
from gateway.b2bua.observer import CallObserver
from gateway.b2bua.ports import ClientOwner, SipPort, TrunkSide
from gateway.b2bua.route_request import read_route_request
from gateway.b2bua.session_timer import IntervalTooSmall, SessionTimerPolicy, interval_too_small, read_offer
from gateway.registrar import Registrar
from gateway.registrar.gate import DigestGate
from gateway.routing.request import Router
from gateway.routing.targets import Target as RouteTarget
from gateway.routing.targets import TargetKind
from gateway.sip.errors import LocalProtocolError, RemoteProtocolError
from gateway.sip.events import (
    AckNotReceived,
    CancelReceived,
    Event,
    MalformedMessage,
    RequestReceived,
    ResponseReceived,
    Target,
    TransactionTimedOut,
    TransportFailed,
)
from gateway.sip.message import Request, Response, make_response
from gateway.sip.timers import TimerHandle

log = logging.getLogger(__name__)
# Option tags (§19.2) the gateway implements; a request that requires any other gets 420 (§8.2.2.3).
# "timer": RFC 4028 session timers, relayed end to end and watched (see `session_timer`).
SUPPORTED: frozenset[str] = frozenset({"timer"})


def unsupported_extensions(request: Request) -> list[str]:
    """The option tags of the request's Require header fields that the gateway does not support."""
    tags = [tag.strip() for value in request.get_all("Require") for tag in value.split(",")]
    return [tag for tag in tags if tag and tag.lower() not in SUPPORTED]


class _Ignored:
    """The owner of a BYE nobody waits for (see `B2bua._end_orphan`)."""

    def on_response(self, transaction: object, response: Response, source: Target, now: float) -> None:
        return None

    def on_no_answer(self, transaction: object, status: int, now: float) -> None:
        return None


_IGNORED = _Ignored()


def _every_connection_open(target: Target) -> bool:
    return True


def extension_target(user: str, transferor: int | None) -> RouteTarget | None:
    """The default `transfer_target`: a blind transfer goes to the phones registered for `user` as
    an extension (the live router knows employees and outside numbers; see `LiveRouter.transfer_target`)."""
    return RouteTarget(TargetKind.EMPLOYEE, extension=user) if user else None


# How long a blind transfer's target rings, then the transferor again when nobody answered (R5).
TRANSFER_RING_TIME = 20.0


class B2bua:
    """Turns inbound INVITEs into `Call`s routed by `router` and answers OPTIONS, REGISTER and strays itself.

    `router` decides where each call goes, at once or later (`gateway.routing.request.Router`); the
    B2BUA never waits for it: the call waits in ROUTING, where CANCEL and retransmissions find it.
    `connected` tells whether a stream connection to a peer is open now (the transports know);
    `nat_contacts` is how a UDP phone behind NAT is reached (see `gateway.b2bua.flows`);
    `session_timers` bounds the RFC 4028 session intervals the gateway lets through and watches;
    `max_call_seconds` ends any answered call that lasts longer (0: no limit).
    """

    def __init__(
        self,
        port: SipPort,
        observer: CallObserver,
        router: Router,
        registrar: Registrar,
        invite_gate: DigestGate,
        trusted: Callable[[str, int], bool],
        *,
        connected: Callable[[Target], bool] = _every_connection_open,
        nat_contacts: str = NAT_SOURCE,
        session_timers: SessionTimerPolicy = SessionTimerPolicy(),
        max_call_seconds: float = 0.0,
        trunks: TrunkSide | None = None,
        transfer_target: TransferTarget = extension_target,
        transfer_ring_time: float = TRANSFER_RING_TIME,
    ) -> None:
        if nat_contacts not in NAT_CONTACTS:
            raise ValueError(f"nat_contacts must be one of {', '.join(NAT_CONTACTS)}, not {nat_contacts!r}")
        if max_call_seconds < 0:
            raise ValueError("max_call_seconds must be 0 (no limit) or more")
        if transfer_ring_time <= 0:
            raise ValueError("transfer_ring_time must be more than 0 seconds")
        self.session_timers = session_timers
        self.max_call_seconds = max_call_seconds
        self.transfer_target = transfer_target
        self.transfer_ring_time = transfer_ring_time
        self.connected = connected
        self.nat_contacts = nat_contacts
        self.port = port
        self.observer = observer
        self.router = router
        self.registrar = registrar
        self.invite_gate = invite_gate
        self.trusted = trusted
        self.trunks = trunks or TrunkSide()
        self.contacts: dict[str, str] = {}
        self.calls: set[Call] = set()
        self._dialogs: dict[tuple[str, str], tuple[Call, int]] = {}
        self._transactions: dict[object, tuple[Call, object]] = {}
        self._owned: dict[object, ClientOwner] = {}
        self._invites: dict[object, Call] = {}
        # §8.2.2.2: initial INVITEs by (Call-ID, From tag, CSeq), to spot the same request on a new branch.
        self._merged: dict[tuple[str, str, int], Call] = {}
        self.destinations = Destinations(registrar.store, nat_contacts, connected)
        # Answered calls per employee (SPEC R3: a member already on a call is skipped).
        self._engaged: dict[int, int] = {}
        self._actions: dict[type, Callable[[Any, float], None]] = {
            RequestReceived: self._on_request,
            ResponseReceived: self._on_response,
            CancelReceived: self._on_cancel,
            TransactionTimedOut: self._on_timeout,
            TransportFailed: self._on_transport_failed,
            AckNotReceived: self._on_ack_missing,
            MalformedMessage: self._on_malformed,
        }

    def set_contact(self, transport: str, host: str, port: int) -> None:
        """The Contact the gateway puts in its requests and answers on `transport`."""
        host_text = f"[{host}]" if ":" in host else host
        suffix = "" if transport == "udp" else f";transport={transport}"
        self.contacts[transport] = f"<sip:gw@{host_text}:{port}{suffix}>"

    # -- events --------------------------------------------------------------------------
    def handle(self, event: Event, now: float) -> None:
        """Act on one endpoint event."""
        action = self._actions.get(type(event))
        if action is None:
            return  # TransactionTerminated: calls keep no per-transaction state worth dropping late
        try:
            action(event, now)
        except (RemoteProtocolError, LocalProtocolError) as error:
            log.debug("dropped %s: %s", type(event).__name__, error)

    def _on_cancel(self, event: CancelReceived, now: float) -> None:
        txn = event.invite_transaction
        call = self._invites.get(txn)
        if call is not None:
            call.on_cancel(now)
            return
        # A re-INVITE may be cancelled too (§9, §14.1): its request names the dialog.
        request = txn.request
        found = self._dialogs.get((request.call_id, request.to_tag or ""))
        if found is not None:
            found[0].on_relay_cancel(txn, now)

    def _on_ack_missing(self, event: AckNotReceived, now: float) -> None:
        call = self._invites.get(event.transaction)
        if call is not None:
            call.on_ack_missing(now)
            return
        # The 2xx of a relayed re-INVITE: its request names the dialog (our tag is its To tag).
        request = event.transaction.request
        found = self._dialogs.get((request.call_id, request.to_tag or ""))
        if found is not None:
            found[0].on_reinvite_ack_missing(found[1], now)

    @staticmethod
    def _on_malformed(event: MalformedMessage, now: float) -> None:
        log.debug("malformed SIP from %s: %s", event.source, event.reason)

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request, txn = event.request, event.transaction
        if txn is None:
            if request.method == "ACK":
                found = self._dialogs.get((request.call_id, request.to_tag or ""))
                if found is not None:
                    found[0].on_ack(found[1], request, now)
            return
        try:
            self._on_transaction_request(request, event.source, txn, now)
        except RemoteProtocolError as error:
            self._answer(txn, request, error.status_hint, now)

    def _on_transaction_request(self, request: Request, source: Target, txn: object, now: float) -> None:
        if request.method != "REGISTER" and request.get("Require") is not None:
            unsupported = unsupported_extensions(request)
            if unsupported:
                response = make_response(request, 420, to_tag=self.port.new_tag())
                response.headers.append(("Unsupported", ", ".join(unsupported)))
                self.respond(txn, response, now)  # type: ignore[arg-type]
                return
        to_tag = request.to_tag
        if to_tag is not None:
            found = self._dialogs.get((request.call_id, to_tag))
            if found is None:
                self._answer(txn, request, 481, now)  # §12.2.2
            else:
                found[0].on_request(found[1], request, txn, now)  # type: ignore[arg-type]
            return
        method = request.method
        if method == "INVITE":
            self._on_invite(request, source, txn, now)
        elif method == "OPTIONS":
            self._on_options(request, txn, now)
        elif method == "REGISTER":
            self.respond(txn, self.registrar.handle(request, source, now), now)  # type: ignore[arg-type]
        elif method in propagation.DIALOG_ONLY or method == "REFER":
            # §15.1.2: a BYE (or INFO, UPDATE) for no dialog we have; a REFER from no call (R5).
            self._answer(txn, request, 481, now)
        else:
            response = make_response(request, 405, to_tag=self.port.new_tag())
            response.headers.append(("Allow", propagation.ALLOW_OUT_OF_DIALOG))
            self.respond(txn, response, now)  # type: ignore[arg-type]

    def _on_invite(self, request: Request, source: Target, txn: object, now: float) -> None:
        hops = request.max_forwards
        if hops is not None and hops <= 0:
            self._answer(txn, request, 483, now)  # §16.3 step 3 applies to a B2BUA's relaying too
            return
        if request.get("Contact") is None:
            raise RemoteProtocolError("INVITE without Contact", 400)  # §8.1.1.8
        if contact_target(request) is None:
            # §8.1.1.8: the Contact is where this dialog's requests (our BYE) go; without a host, nowhere.
            raise RemoteProtocolError("INVITE Contact is not a SIP URI with a host", 400)
        merged_key = (request.call_id, request.from_tag or "", request.cseq[0])
        if merged_key in self._merged:
            self._answer(txn, request, 482, now)  # §8.2.2.2: the same request again, on another branch
            return
        trunk_id = self.trunks.by_source(source[1], source[2])
        trusted = trunk_id is not None or self.trusted(source[1], source[2])
        authenticated: str | None = None
        if not trusted:
            verdict = self.invite_gate.verify(request, "Proxy-Authorization", now, source[1])
            if not verdict.ok:
                response = make_response(request, 407, to_tag=self.port.new_tag())
                response.headers.extend(
                    ("Proxy-Authenticate", challenge) for challenge in self.invite_gate.challenges(now, stale=verdict.stale)
                )
                self.respond(txn, response, now)  # type: ignore[arg-type]
                return
            authenticated = verdict.username
            # A customer's PBX authenticates with its trunk's own credentials: a trunk call, not a phone's.
            trunk_id = self.trunks.by_login(authenticated) if authenticated is not None else None
            if trunk_id is not None:
                trusted, authenticated = True, None
        try:
            offer = read_offer(request, self.session_timers)
        except IntervalTooSmall as small:
            self.respond(txn, interval_too_small(request, small.min_se, self.port.new_tag()), now)  # type: ignore[arg-type]
            return
        route_request = read_route_request(request, source, trusted, authenticated, now, trunk_id)
        call = Call(self, request, txn, source, route_request.request_user or "", now, offer)  # type: ignore[arg-type]
        self.calls.add(call)
        self._invites[txn] = call
        self._merged[merged_key] = call
        call.route(self.router, route_request, now)

    def _on_options(self, request: Request, txn: object, now: float) -> None:
        response = make_response(request, 200, to_tag=self.port.new_tag())
        response.headers += [
            ("Allow", propagation.ALLOW_OUT_OF_DIALOG), ("Accept", "application/sdp"), ("Supported", "timer")
        ]
        self.respond(txn, response, now)  # type: ignore[arg-type]

    def _on_response(self, event: ResponseReceived, now: float) -> None:
        response = event.response
        if event.transaction is not None and self._owned:
            owner = self._owned.get(event.transaction)
            if owner is not None:
                if response.status >= 200:
                    del self._owned[event.transaction]
                owner.on_response(event.transaction, response, event.source, now)
                return
        bound = self._transactions.get(event.transaction) if event.transaction is not None else None
        if bound is None:
            if not (200 <= response.status < 300 and response.cseq[1] == "INVITE"):
                return
            # A 2xx retransmission: the ACK we sent for it was lost (§13.2.2.4).
            found = self._dialogs.get((response.call_id, response.from_tag or ""))
            if found is not None:
                found[0].on_2xx_retransmission(found[1], response, now)
            elif event.transaction is not None:
                self._end_orphan(response, event.source, now)
            return
        call, purpose = bound
        if response.status >= 200:
            del self._transactions[event.transaction]
        if purpose.__class__ is Branch:
            call.on_branch_response(purpose, response, now)
        elif isinstance(purpose, Relay):
            call.on_relay_response(purpose, response, now)
        elif isinstance(purpose, Awaited):
            purpose.on_response(response, now)

    def _end_orphan(self, response: Response, source: Target, now: float) -> None:
        """A first 2xx to an INVITE of a call that is already over (a leg it stopped counting on): ACK
        and BYE it (§13.2.2.4), or that callee sits in a call nobody hears until its 2xx times out."""
        leg = Leg(
            call_id=response.call_id, local_tag=response.from_tag or "", local_uri=strip_tag(response.get("From") or ""),
            remote_uri=strip_tag(response.get("To") or ""), remote_target="", transport=source[0],
            contact=self.contacts.get(source[0], ""), local_cseq=response.cseq[0], peer=source,
        )
        if not learn_remote(leg, response):
            return
        leg.peer = source if source[0] != "udp" else None  # a stream answer came over our connection
        ack = leg.create_request("ACK", cseq=response.cseq[0])
        self.stateless(ack, leg.next_hop())
        txn = self.request(leg.create_request("BYE"), leg.next_hop(), now)
        if txn is not None:
            self._owned[txn] = _IGNORED
        log.info("call %s: a late 2xx after the call ended was ACKed and ended with BYE", response.call_id)

    def _on_timeout(self, event: TransactionTimedOut, now: float) -> None:
        self._on_no_answer(event.transaction, propagation.TIMEOUT, now)

    def _on_transport_failed(self, event: TransportFailed, now: float) -> None:
        self._on_no_answer(event.transaction, propagation.UNREACHABLE, now)  # §8.1.3.1: as a 503

    def _on_no_answer(self, transaction: object, status: int, now: float) -> None:
        owner = self._owned.pop(transaction, None)
        if owner is not None:
            owner.on_no_answer(transaction, status, now)
            return
        bound = self._transactions.pop(transaction, None)
        if bound is None:
            return
        call, purpose = bound
        if purpose.__class__ is Branch:
            call.on_branch_failure(purpose, status, now)
        elif isinstance(purpose, Relay):
            call.on_relay_failure(purpose, status, now)
        elif isinstance(purpose, Awaited):
            purpose.on_failure(status, now)

    def _answer(self, txn: object, request: Request, status: int, now: float) -> None:
        self.respond(txn, make_response(request, status, to_tag=self.port.new_tag()), now)  # type: ignore[arg-type]

    # -- CallContext ---------------------------------------------------------------------
    def respond(self, transaction: object, response: Response, now: float) -> None:
        try:
            self.port.send_response(transaction, response, now)
        except LocalProtocolError as error:
            log.debug("response %d not sent: %s", response.status, error)

    def request(self, request: Request, target: Target, now: float) -> object | None:
        try:
            return self.port.send_request(request, target, now)
        except (LocalProtocolError, OSError) as error:
            log.warning("cannot send %s to %s: %s", request.method, target, error)
            return None

    def acknowledged_by_request(self, transaction: object, now: float) -> None:
        self.port.acknowledged_by_request(transaction, now)

    def stateless(self, message: Request, target: Target) -> None:
        self.port.send_stateless(message, target)

    def cancel(self, transaction: object, now: float) -> None:
        self.port.cancel(transaction, now)

    def contact_for(self, transport: str) -> str:
        contact = self.contacts.get(transport)
        if contact is None:
            raise LocalProtocolError(f"the gateway does not listen on {transport}")
        return contact

    def new_tag(self) -> str:
        return self.port.new_tag()

    def trunk_credentials(self, trunk_id: int) -> tuple[str, str] | None:
        return self.trunks.credentials(trunk_id)

    def new_call_id(self) -> str:
        return self.port.new_call_id()

    def resolve(self, target: str, callee: str) -> Destination:
        return self.destinations.resolve(target, callee)

    def flow_open(self, target: Target) -> bool:
        return self.connected(target)

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> TimerHandle:
        def fire(name: str, now: float) -> None:
            try:
                callback(now)
            except (RemoteProtocolError, LocalProtocolError) as error:
                log.debug("timer %s: %s", name, error)

        return self.port.timers.schedule(deadline, "b2bua", fire)

    def registered(self, user: str, now: float) -> list[str]:
        return self.registrar.store.contacts(user, now)

    def engaged(self, employee_id: int, calls: int) -> None:
        count = self._engaged.get(employee_id, 0) + calls
        if count > 0:
            self._engaged[employee_id] = count
        else:
            self._engaged.pop(employee_id, None)

    def busy_employees(self) -> frozenset[int]:
        """The employees whose phone is in an answered call now (SPEC R3: skip them when ringing)."""
        return frozenset(self._engaged)

    def bind_transaction(self, transaction: object, call: Call, purpose: object) -> None:
        self._transactions[transaction] = (call, purpose)

    def own_transaction(self, transaction: object, owner: ClientOwner) -> None:
        """`owner` (not a call) hears the answers of `transaction` (see `ClientOwner`)."""
        self._owned[transaction] = owner

    def bind_dialog(self, leg: Leg, call: Call, side: int) -> None:
        self._dialogs[(leg.call_id, leg.local_tag)] = (call, side)

    def unbind_dialog(self, leg: Leg) -> None:
        self._dialogs.pop((leg.call_id, leg.local_tag), None)

    def find_dialog(self, call_id: str, tags: tuple[str, str]) -> tuple[Call, int] | None:
        for tag in tags:
            found = self._dialogs.get((call_id, tag))
            if found is not None and isinstance(found[0], Call):
                return found
        return None

    def release(self, call: Call) -> None:
        self.calls.discard(call)
        self._invites.pop(call.invite_txn, None)
        invite = call.invite
        self._merged.pop((invite.call_id, invite.from_tag or "", invite.cseq[0]), None)
        dialogs, transactions = self._dialogs, self._transactions
        for leg in call.legs:
            dialogs.pop((leg.call_id, leg.local_tag), None)
        for hunt in call.hunts():
            for branch in hunt.branches:
                leg = branch.leg
                dialogs.pop((leg.call_id, leg.local_tag), None)
                transactions.pop(branch.txn, None)
