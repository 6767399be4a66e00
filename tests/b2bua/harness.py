"""Two or more sans-IO endpoints wired together in memory: the B2BUA and scripted phones.

No sockets and no sleeps: datagrams are moved by `Network.run()`, the clock by `advance()`.
Peers are plain `SipEndpoint`s driven by the test, with `Dialog` for their in-dialog requests.
A "tcp" target is carried as a stream to its node over a connection both nodes then remember
(`Node.streams`); with no node there, or one that accepts no connections (`Node.accepts`, a
softphone behind NAT) and has no connection open with the sender, the connect is refused and the
sender's endpoint hears `transport_error`, as the real TCP adapter reports it. `Network.close_stream`
closes a connection on both sides, as the adapters report a closed socket.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.b2bua.controller import B2bua
from gateway.b2bua.events import CallEvent
from gateway.b2bua.leg import uri_target
from gateway.b2bua.observer import CallObserver, ObserverSet
from gateway.b2bua.ports import TrunkSide
from gateway.b2bua.static_router import StaticRouter
from gateway.config import StaticRoute
from gateway.registrar import Binding, BindingStore, Registrar
from gateway.registrar.gate import DigestGate
from gateway.routing.request import Router
from gateway.sip.auth import build_authorization
from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import CancelReceived, Event, RequestReceived, ResponseReceived, Target
from gateway.sip.message import Request, Response, make_response
from tests.helpers.sip_dialog import Dialog

GW = ("127.0.0.1", 5060)
SDP_A = b"v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = b"v=0\r\no=bob 2 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
USERS = {"1001": "pw-1001"}
SECRET = b"0123456789abcdef0123456789abcdef"
_serial = itertools.count(1)


class Recorder:
    """A CallObserver that keeps every notification, in order: `events` the call's outcome
    (offered, answered, failed, ended), `setup` the routing phase and legs offered (CallStarted,
    LegOffered)."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.setup: list[CallEvent] = []

    def call_offered(self, event: CallEvent) -> None:
        self.events.append(event)

    call_answered = call_failed = call_ended = call_transferred = call_offered

    def call_started(self, event: CallEvent) -> None:
        self.setup.append(event)

    leg_offered = call_started

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]


@dataclass
class Node:
    """One endpoint on the in-memory network; `handler` consumes its events (peers keep them)."""

    host: str
    port: int
    endpoint: SipEndpoint
    handler: Callable[[Event, float], None] | None = None
    events: list[Event] = field(default_factory=list)
    accepts: bool = True  # takes incoming TCP connections
    streams: set[Target] = field(default_factory=set)  # the TCP connections open with other nodes

    @property
    def target(self) -> Target:
        return ("udp", self.host, self.port)


class Network:
    """Moves datagrams between nodes until nothing is in flight; `drop` can lose chosen ones."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, int], Node] = {}
        self.now = 1000.0
        self.drop: Callable[[bytes, Target], bool] = lambda data, target: False
        self.wire: list[bytes] = []

    def add(self, host: str, port: int, handler: Callable[[Event, float], None] | None = None) -> Node:
        node = Node(host, port, SipEndpoint(sent_by={"udp": (host, port), "tcp": (host, port)}), handler)
        self.nodes[(host, port)] = node
        return node

    def run(self) -> None:
        moved = True
        while moved:
            moved = False
            for node in list(self.nodes.values()):
                self._drain_events(node)
                for data, target in node.endpoint.datagrams_to_send():
                    moved = True
                    self.wire.append(data)
                    if self.drop(data, target):
                        continue
                    destination = self.nodes.get((target[1], target[2]))
                    if target[0] == "tcp":
                        source = ("tcp", node.host, node.port)
                        if destination is None or not (destination.accepts or source in destination.streams):
                            node.endpoint.transport_error(target, self.now)  # connection refused
                        else:
                            node.streams.add(target)
                            destination.streams.add(source)
                            destination.endpoint.receive_stream(source, data, self.now)
                    elif destination is not None:
                        destination.endpoint.receive_datagram(data, node.target, self.now)

    def close_stream(self, one: Node, other: Node) -> None:
        """The TCP connection between two nodes closes; both adapters tell their endpoints."""
        one.streams.discard(("tcp", other.host, other.port))
        other.streams.discard(("tcp", one.host, one.port))
        one.endpoint.stream_closed(("tcp", other.host, other.port))
        other.endpoint.stream_closed(("tcp", one.host, one.port))

    def _drain_events(self, node: Node) -> None:
        while (event := node.endpoint.next_event()) is not None:
            if node.handler is not None:
                node.handler(event, self.now)
            else:
                node.events.append(event)

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """Move the clock forward, firing every due timer on the way."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for node in self.nodes.values():
                node.endpoint.handle_timer(self.now)
            self.run()


def make_gateway(
    network: Network,
    routes: list[StaticRoute],
    *,
    router: Router | None = None,
    trusted: Callable[[str, int], bool] = lambda host, port: True,
    nat_contacts: str = "source",
    max_call_seconds: float = 0.0,
    observer: CallObserver | None = None,
    trunks: TrunkSide | None = None,
) -> tuple[B2bua, Recorder]:
    """The gateway on `GW`; `observer` hears about calls too, after the returned recorder.

    `router` replaces the `StaticRouter` of `routes` (an async router's stand-in)."""
    recorder = Recorder()
    node = network.add(*GW)
    gate = DigestGate(SECRET, "test", 300.0, USERS)
    registrar = Registrar(BindingStore(), gate, min_expires=60)
    observers = ObserverSet([recorder, observer] if observer is not None else [recorder])  # type: ignore[list-item]
    b2bua = B2bua(
        node.endpoint, observers,  # type: ignore[arg-type]
        router if router is not None else StaticRouter(routes, registrar.store), registrar, gate, trusted,
        connected=node.streams.__contains__, nat_contacts=nat_contacts, max_call_seconds=max_call_seconds,
        trunks=trunks,
    )
    b2bua.set_contact("udp", *GW)
    node.endpoint.sent_by["tcp"] = GW
    b2bua.set_contact("tcp", *GW)
    node.handler = b2bua.handle
    return b2bua, recorder


def own_address(contact: str) -> Target:
    """Where a phone that is not behind NAT registers from: the address its Contact names."""
    return uri_target(contact, "udp")


def bind(b2bua: B2bua, aor: str, contact: str, at: float, source: Target | None = None) -> None:
    """A live binding of `contact` registered at `at`, from `source` (default: the Contact's own address)."""
    b2bua.registrar.store.put(aor, Binding(contact, at + 600, contact, 1, source or own_address(contact), at))


class Phone:
    """A scripted UA on a node: sends what the test says, remembers what it received.

    `transport` is how it talks to the gateway; `contact` replaces the node's own address in its
    Contact (a phone behind NAT names its private address); `accepts` False refuses incoming TCP
    connections (a softphone that waits for requests on the connection it registered over).
    """

    def __init__(self, network: Network, host: str, port: int, user: str, *, transport: str = "udp",
                 contact: str | None = None, accepts: bool = True) -> None:
        self.network = network
        self.node = network.add(host, port)
        self.node.accepts = accepts
        self.user = user
        self.transport = transport
        self._contact = contact
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.invite_txn: object = None
        self.last_txn: object = None  # the client transaction of the last in-dialog request

    @property
    def contact(self) -> str:
        if self._contact is not None:
            return self._contact
        return f"sip:{self.user}@{self.node.host}:{self.node.port}"

    @contact.setter
    def contact(self, uri: str) -> None:
        self._contact = uri

    @property
    def gateway(self) -> Target:
        return (self.transport, *GW)

    def requests(self, method: str | None = None) -> list[RequestReceived]:
        return [e for e in self.node.events if isinstance(e, RequestReceived)
                and (method is None or e.request.method == method)]

    def responses(self, method: str = "INVITE") -> list[Response]:
        return [e.response for e in self.node.events if isinstance(e, ResponseReceived)
                and e.response.cseq[1] == method]

    def statuses(self, method: str = "INVITE") -> list[int]:
        return [response.status for response in self.responses(method)]

    def finals(self, method: str = "INVITE") -> list[int]:
        """Final statuses only: a retransmitted provisional never hides a missing or extra final."""
        return [status for status in self.statuses(method) if status >= 200]

    def cancels(self) -> list[CancelReceived]:
        return [e for e in self.node.events if isinstance(e, CancelReceived)]

    def send(self, request: Request) -> Request:
        """Send a hand-built request in its own client transaction to the gateway."""
        self.node.endpoint.send_request(request, self.gateway, self.network.now)
        self.network.run()
        return request

    def register(self, password: str, expires: int = 600) -> Response:
        """REGISTER `contact` for `user` with digest (answering the 401 like a phone); the final answer."""
        for cseq in (1, 2):
            headers = [
                ("From", f"<sip:{self.user}@{GW[0]}>;tag=r{self.node.port}"),
                ("To", f"<sip:{self.user}@{GW[0]}>"),
                ("Call-ID", f"reg-{self.node.host}-{self.node.port}"),
                ("CSeq", f"{cseq} REGISTER"),
                ("Contact", f"<{self.contact}>"),
                ("Expires", str(expires)),
            ]
            if cseq == 2:
                challenge = self.responses("REGISTER")[-1].get("WWW-Authenticate") or ""
                headers.append(("Authorization", build_authorization(
                    challenge, method="REGISTER", uri=f"sip:{GW[0]}", username=self.user, password=password,
                    cnonce="c0ffee")))
            self.send(Request("REGISTER", f"sip:{GW[0]}", headers))
            if self.responses("REGISTER")[-1].status != 401:
                break
        return self.responses("REGISTER")[-1]

    # -- as caller -------------------------------------------------------------------------
    def call(self, dialled: str, body: bytes = SDP_A, extra: list[tuple[str, str]] | None = None) -> Request:
        n = next(_serial)
        headers = [
            ("From", f'"Alice" <sip:{self.user}@{self.node.host}>;tag=a{n}'),
            ("To", f"<sip:{dialled}@{GW[0]}>"),
            ("Call-ID", f"call-{n}@{self.node.host}"),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{self.contact}>"),
        ]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        request = Request("INVITE", f"sip:{dialled}@{GW[0]}:{GW[1]}", headers + (extra or []), body)
        self.invite = request
        self.invite_txn = self.node.endpoint.send_request(request, self.gateway, self.network.now)
        self.network.run()
        return request

    def ack(self, body: bytes = b"") -> None:
        final = self.responses()[-1]
        if self.dialog is None:
            assert self.invite is not None
            self.dialog = Dialog.from_uac(self.invite, final)
        headers = [("Content-Type", "application/sdp")] if body else None
        ack = self.dialog.create_ack(final.cseq[0], body, headers)
        self.node.endpoint.send_stateless(ack, self.gateway)
        self.network.run()

    def cancel(self) -> None:
        self.node.endpoint.cancel(self.invite_txn, self.network.now)  # type: ignore[arg-type]
        self.network.run()

    def send_in_dialog(self, method: str, body: bytes = b"", extra: list[tuple[str, str]] | None = None) -> Request:
        assert self.dialog is not None
        headers = [("Content-Type", "application/sdp")] if body else []
        request = self.dialog.create_request(method, body, headers + (extra or []))
        self.last_txn = self.node.endpoint.send_request(request, self.gateway, self.network.now)
        self.network.run()
        return request

    # -- as callee -------------------------------------------------------------------------
    def early_dialog(self) -> Dialog:
        """The callee's dialog of the first INVITE it received, with the tag `answer` gives it."""
        invite = self.requests("INVITE")[0].request
        self.dialog = Dialog.from_uas(invite, f"b{id(invite) % 100000}", self.contact)
        return self.dialog

    def answer(self, status: int, body: bytes = b"", index: int = -1, method: str | None = None,
               extra: list[tuple[str, str]] | None = None) -> Response:
        event = self.requests(method)[index]
        request = event.request
        tag = f"b{id(request) % 100000}"
        response = make_response(request, status, to_tag=tag)
        response.headers += extra or []
        if 100 < status < 400:  # dialog-creating answers and redirects carry a Contact
            response.headers.append(("Contact", f"<{self.contact}>"))
        if body:
            response.headers.append(("Content-Type", "application/sdp"))
            response.body = body
        self.node.endpoint.send_response(event.transaction, response, self.network.now)  # type: ignore[arg-type]
        fresh = self.dialog is None or self.dialog.call_id != request.call_id
        if request.method == "INVITE" and 200 <= status < 300 and request.to_tag is None and fresh:
            self.dialog = Dialog.from_uas(request, tag, self.contact)
        self.network.run()
        return response


def no_state_left(b2bua: B2bua) -> bool:
    """True when the controller holds no call, dialog, transaction or INVITE of a finished call."""
    return (b2bua.calls, b2bua._dialogs, b2bua._transactions, b2bua._invites, b2bua._merged) == (
        set(), {}, {}, {}, {})
