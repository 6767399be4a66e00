"""Transport errors reported to client transactions (RFC 3261 §17.1.4, §18.4, figures 5 and 6).

The adapter tells the endpoint `transport_error(target, now)` when a TCP connection to `target`
is refused or dead; the transactions sending there end with `TransportFailed` (the TU acts as on a
503, §8.1.3.1) instead of waiting 64*T1 for Timer B/F.
"""

from __future__ import annotations

from gateway.sip.events import RequestReceived, TransactionTerminated, TransactionTimedOut, TransportFailed
from gateway.sip.transaction import State
from tests.sip.memnet import MemNet, Node

GONE = ("tcp", "127.0.0.1", 5999)  # no node listens there


def _net() -> tuple[MemNet, Node, Node]:
    net = MemNet()
    return net, net.add("alice", 5161), net.add("bob", 5162)


def test_invite_in_calling_ends_at_once_on_a_transport_error() -> None:
    net, alice, bob = _net()
    txn = alice.endpoint.send_request(alice.request("INVITE", bob, transport="tcp"), GONE, net.now)
    net.run()
    alice.endpoint.transport_error(GONE, net.now)
    net.run()
    [failed] = alice.take(TransportFailed)
    assert failed.transaction is txn and txn.state is State.TERMINATED
    assert [event.transaction for event in alice.take(TransactionTerminated)] == [txn]
    assert alice.endpoint.stats["transport_errors"] == 1
    assert alice.endpoint.get_timer() is None  # Timer B is gone with it
    net.advance(40)
    assert alice.take(TransactionTimedOut) == [] and alice.take(TransportFailed) == []


def test_non_invite_fails_in_trying_and_in_proceeding() -> None:
    net, alice, bob = _net()
    trying = alice.endpoint.send_request(alice.request("OPTIONS", bob, transport="tcp"), GONE, net.now)
    target = bob.target("tcp")
    proceeding = alice.endpoint.send_request(alice.request("MESSAGE", bob, transport="tcp"), target, net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    bob.respond(received, 100, None, net.now)
    net.run()
    assert proceeding.state is State.PROCEEDING
    alice.endpoint.transport_error(GONE, net.now)
    alice.endpoint.transport_error(target, net.now)
    net.run()
    assert [event.transaction for event in alice.take(TransportFailed)] == [trying, proceeding]


def test_invite_past_calling_ignores_a_transport_error() -> None:
    """Figure 5: after a provisional, the INVITE ends by its final answer, not by the transport."""
    net, alice, bob = _net()
    target = bob.target("tcp")
    txn = alice.endpoint.send_request(alice.request("INVITE", bob, transport="tcp"), target, net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    bob.respond(offer, 180, "b1", net.now)
    net.run()
    alice.endpoint.transport_error(target, net.now)
    net.run()
    assert alice.take(TransportFailed) == [] and txn.state is State.PROCEEDING


def test_only_transactions_sending_to_that_target_fail() -> None:
    net, alice, bob = _net()
    doomed = alice.endpoint.send_request(alice.request("INVITE", bob, transport="tcp"), GONE, net.now)
    alive = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    udp_same_address = alice.endpoint.send_request(alice.request("OPTIONS", bob), ("udp", *GONE[1:]), net.now)
    net.run()
    alice.endpoint.transport_error(GONE, net.now)
    net.run()
    assert [event.transaction for event in alice.take(TransportFailed)] == [doomed]
    assert alive.state is State.PROCEEDING and udp_same_address.state is State.TRYING


def test_cancel_waiting_for_a_provisional_dies_with_its_invite_unsent() -> None:
    net, alice, bob = _net()
    invite = alice.endpoint.send_request(alice.request("INVITE", bob, transport="tcp"), GONE, net.now)
    cancel = alice.endpoint.cancel(invite, net.now)
    assert cancel is not None and not cancel.started
    alice.endpoint.transport_error(GONE, net.now)
    net.run()
    assert [event.transaction for event in alice.take(TransportFailed)] == [invite]  # none for the CANCEL
    assert cancel.state is State.TERMINATED and net.sent(b"CANCEL") == []


def test_transport_error_for_an_idle_target_changes_nothing() -> None:
    net, alice, _ = _net()
    alice.endpoint.transport_error(GONE, net.now)
    net.run()
    assert alice.events == [] and alice.endpoint.stats["transport_errors"] == 0


class _Unwalkable(dict):  # type: ignore[type-arg]
    """The endpoint's table of client transactions, refusing to be walked whole."""

    def _refuse(self) -> None:
        raise AssertionError("a transport error walked every client transaction")

    def values(self):  # type: ignore[no-untyped-def]
        self._refuse()

    def items(self):  # type: ignore[no-untyped-def]
        self._refuse()

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._refuse()


def test_a_transport_error_looks_only_at_the_transactions_to_its_target() -> None:
    """A peer can cause transport errors at will (closing its connection): one must cost the
    transactions to that target, not a walk over every transaction of the gateway."""
    net, alice, bob = _net()
    doomed = alice.endpoint.send_request(alice.request("INVITE", bob, transport="tcp"), GONE, net.now)
    others = [alice.endpoint.send_request(alice.request("OPTIONS", bob), ("udp", "127.0.0.9", 7000 + n), net.now)
              for n in range(50)]
    net.run()
    alice.endpoint._client = _Unwalkable(alice.endpoint._client)
    alice.endpoint.transport_error(GONE, net.now)
    alice.endpoint.transport_error(("tcp", "127.0.0.9", 7001), net.now)  # nothing sends there
    net.run()
    assert [event.transaction for event in alice.take(TransportFailed)] == [doomed]
    assert all(txn.state is State.TRYING for txn in others)


def test_the_index_by_target_forgets_every_ended_transaction() -> None:
    """Targets come from peers (Contact, Record-Route): an index that kept ended ones would grow forever."""
    net, alice, bob = _net()
    invite = alice.endpoint.send_request(alice.request("INVITE", bob, transport="tcp"), GONE, net.now)
    alice.endpoint.cancel(invite, net.now)
    for n in range(20):
        alice.endpoint.send_request(alice.request("OPTIONS", bob), ("udp", "127.0.0.9", 7000 + n), net.now)
    answered = alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    bob.respond(received, 200, "b1", net.now)
    net.run()
    alice.endpoint.transport_error(GONE, net.now)
    net.advance(40)  # Timer F for the rest, Timer K for the answered one
    assert answered.state is State.TERMINATED
    assert alice.endpoint._client == {} and alice.endpoint._client_by_target == {}
