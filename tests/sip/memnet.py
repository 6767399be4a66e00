"""An in-memory network for `SipEndpoint` tests: no sockets, a hand-moved clock, chosen drops.

    net = MemNet()
    alice = net.add("alice", port=5161)
    bob = net.add("bob", port=5162)
    txn = alice.endpoint.send_request(request, bob.target(), net.now)
    net.run()                      # carry every datagram until the network is quiet
    net.advance(0.5)               # move the clock, firing each endpoint's timers in order
    net.drop(b"SIP/2.0 200")       # lose the next datagram starting with these bytes

Every datagram carried or dropped is kept in `net.packets`, every event in `node.events`.
TCP targets go through `receive_stream`, split into `stream_chunk`-byte pieces when set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TypeVar

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import Event, RequestReceived, Target
from gateway.sip.message import Request, Response, make_response
from gateway.sip.timers import TimerSettings

E = TypeVar("E")
HOST = "127.0.0.1"


@dataclass
class Packet:
    data: bytes
    source: Target
    destination: Target
    dropped: bool
    at: float


@dataclass
class Node:
    """One endpoint on the network and everything it reported."""

    name: str
    host: str
    port: int
    endpoint: SipEndpoint
    events: list[Event] = field(default_factory=list)

    def target(self, transport: str = "udp") -> Target:
        return (transport, self.host, self.port)

    def take(self, kind: type[E]) -> list[E]:
        """Remove and return the events of one type, oldest first."""
        taken = [event for event in self.events if isinstance(event, kind)]
        self.events = [event for event in self.events if not isinstance(event, kind)]
        return taken

    def request(self, method: str, to: Node, *, call_id: str | None = None, cseq: int = 1,
                transport: str = "udp") -> Request:
        """A fresh out-of-dialog request from this node to `to` (no Via: the endpoint adds it)."""
        scheme_port = f"{to.host}:{to.port}"
        headers = [
            ("From", f"<sip:{self.name}@{self.host}:{self.port}>;tag={self.endpoint.new_tag()}"),
            ("To", f"<sip:{to.name}@{scheme_port}>"),
            ("Call-ID", call_id or self.endpoint.new_call_id()),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:{self.name}@{self.host}:{self.port};transport={transport}>"),
        ]
        return Request(method, f"sip:{to.name}@{scheme_port}", headers)

    def respond(self, received: RequestReceived, status: int, tag: str | None, now: float) -> Response:
        """Answer a received request through its server transaction, as a TU would."""
        assert received.transaction is not None
        response = make_response(received.request, status, to_tag=tag)
        if status < 300 and received.request.method == "INVITE":
            response.add("Contact", f"<sip:{self.name}@{self.host}:{self.port}>")
        self.endpoint.send_response(received.transaction, response, now)
        return response


class MemNet:
    """Carries what endpoints want to send to the endpoint bound at the destination address."""

    def __init__(self, start: float = 1000.0, stream_chunk: int | None = None) -> None:
        self.now = start
        self.stream_chunk = stream_chunk
        self.nodes: dict[tuple[str, int], Node] = {}
        self.packets: list[Packet] = []
        self._drops: list[list[object]] = []

    def add(self, name: str, port: int, host: str = HOST, timers: TimerSettings | None = None) -> Node:
        endpoint = SipEndpoint(sent_by={"udp": (host, port), "tcp": (host, port)},
                               timers=timers or TimerSettings(), user_agent=f"memnet-{name}")
        node = Node(name, host, port, endpoint)
        self.nodes[(host, port)] = node
        return node

    def drop(self, match: bytes | Callable[[bytes], bool], times: int = 1) -> None:
        """Lose the next `times` datagrams that start with `match` (or satisfy it)."""
        self._drops.append([match, times])

    def _should_drop(self, data: bytes) -> bool:
        for rule in self._drops:
            match, left = rule
            hit = data.startswith(match) if isinstance(match, bytes) else match(data)  # type: ignore[operator]
            if hit and left:
                rule[1] = left - 1  # type: ignore[operator]
                return True
        return False

    def run(self) -> int:
        """Carry datagrams until no endpoint has anything to send; returns how many were carried."""
        carried = 0
        busy = True
        while busy:
            busy = False
            for node in list(self.nodes.values()):
                for data, target in node.endpoint.datagrams_to_send():
                    busy = True
                    carried += self._carry(node, data, target)
                self._collect()
        return carried

    def _carry(self, sender: Node, data: bytes, target: Target) -> int:
        transport, host, port = target
        source: Target = (transport, sender.host, sender.port)
        dropped = self._should_drop(data)
        self.packets.append(Packet(data, source, target, dropped, self.now))
        receiver = self.nodes.get((host, port))
        if dropped or receiver is None:
            return 0
        if transport == "udp":
            receiver.endpoint.receive_datagram(data, source, self.now)
        else:
            step = self.stream_chunk or len(data)
            for offset in range(0, len(data), step):
                receiver.endpoint.receive_stream(source, data[offset : offset + step], self.now)
        return 1

    def _collect(self) -> None:
        for node in self.nodes.values():
            while (event := node.endpoint.next_event()) is not None:
                node.events.append(event)

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing due timers in deadline order and carrying what they send."""
        end = self.now + seconds
        while True:
            deadlines = [d for n in self.nodes.values() if (d := n.endpoint.get_timer()) is not None]
            if not deadlines or min(deadlines) > end:
                break
            self.now = max(self.now, min(deadlines))
            for node in self.nodes.values():
                deadline = node.endpoint.get_timer()
                if deadline is not None and deadline <= self.now:
                    node.endpoint.handle_timer(self.now)
            self._collect()
            self.run()
        self.now = end
        self.run()

    def sent(self, prefix: bytes, *, delivered_only: bool = False) -> list[Packet]:
        """Packets starting with `prefix`, in send order."""
        return [p for p in self.packets if p.data.startswith(prefix) and not (delivered_only and p.dropped)]

    def gaps(self, prefix: bytes) -> list[float]:
        """Seconds between consecutive packets starting with `prefix` (retransmission intervals)."""
        return [round(later.at - earlier.at, 3) for earlier, later in pairwise(self.sent(prefix))]
