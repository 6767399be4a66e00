"""CANCEL (RFC 3261 §9) between two in-memory endpoints."""

from __future__ import annotations

from gateway.sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from gateway.sip.message import make_response
from gateway.sip.transaction import State
from tests.sip.memnet import MemNet, Node


def _pair() -> tuple[MemNet, Node, Node]:
    net = MemNet()
    return net, net.add("alice", 5161), net.add("bob", 5162)


def _responses(node: Node) -> list[tuple[str, int]]:
    return [(e.response.cseq[1], e.response.status) for e in node.take(ResponseReceived)]


def test_cancel_while_ringing_gets_200_and_the_invite_487_then_ack() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob)
    client = alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    tag = bob.endpoint.new_tag()
    bob.respond(offer, 180, tag, net.now)
    net.run()
    cancel = alice.endpoint.cancel(client, net.now)
    assert cancel is not None
    net.run()
    [cancelled] = bob.take(CancelReceived)
    assert cancelled.invite_transaction is offer.transaction
    assert bob.take(RequestReceived) == []  # CANCEL is reported only as CancelReceived
    [sent] = net.sent(b"CANCEL")
    # §9.1: same branch, Request-URI, Call-ID, From, To and CSeq number as the INVITE.
    assert sent.data.startswith(f"CANCEL {invite.uri} SIP/2.0".encode())
    assert f"branch={invite.top_via.branch}".encode() in sent.data
    assert f"CSeq: {invite.cseq[0]} CANCEL".encode() in sent.data
    bob.respond(offer, 487, tag, net.now)
    net.run()
    assert _responses(alice) == [("INVITE", 100), ("INVITE", 180), ("CANCEL", 200), ("INVITE", 487)]
    [ok_cancel] = net.sent(b"SIP/2.0 200")
    assert f";tag={tag}".encode() in ok_cancel.data  # §9.2: the INVITE's To tag
    assert len(net.sent(b"ACK")) == 1 and offer.transaction.state is State.CONFIRMED
    assert cancel.state is State.COMPLETED and client.state is State.COMPLETED
    assert bob.take(RequestReceived) == []


def test_cancel_with_no_matching_invite_is_answered_481() -> None:
    net, alice, bob = _pair()
    stray = alice.request("CANCEL", bob)
    alice.endpoint.send_request(stray, bob.target(), net.now)
    net.run()
    assert _responses(alice) == [("CANCEL", 481)]
    assert bob.take(CancelReceived) == [] and bob.take(RequestReceived) == []


def test_cancel_before_any_provisional_waits_for_one() -> None:
    net, alice, bob = _pair()
    net.drop(b"SIP/2.0 100")
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    cancel = alice.endpoint.cancel(client, net.now)
    assert cancel is not None and not cancel.started
    net.run()
    assert net.sent(b"CANCEL") == []
    assert alice.endpoint.cancel(client, net.now) is cancel  # asking twice changes nothing
    bob.respond(offer, 180, bob.endpoint.new_tag(), net.now)
    net.run()
    assert cancel.started and len(net.sent(b"CANCEL")) == 1
    assert len(bob.take(CancelReceived)) == 1


def test_deferred_cancel_is_dropped_when_a_final_response_comes_first() -> None:
    net, alice, bob = _pair()
    net.drop(b"SIP/2.0 100")
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    cancel = alice.endpoint.cancel(client, net.now)
    bob.respond(offer, 486, bob.endpoint.new_tag(), net.now)
    net.run()
    assert net.sent(b"CANCEL") == []
    assert cancel is not None and cancel.state is State.TERMINATED
    assert cancel in [e.transaction for e in alice.take(TransactionTerminated)]
    assert alice.endpoint.cancel(client, net.now) is None  # nothing left to cancel


def test_cancel_after_the_final_response_gets_200_but_no_event() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"SIP/2.0 486")
    bob.respond(offer, 486, bob.endpoint.new_tag(), net.now)
    net.run()
    cancel = alice.endpoint.cancel(client, net.now)  # alice still Proceeding: the 486 was lost
    net.run()
    assert cancel is not None
    assert ("CANCEL", 200) in _responses(alice)
    assert bob.take(CancelReceived) == []  # §9.2: a CANCEL after the final answer has no effect


def test_retransmitted_cancel_is_answered_again_without_a_second_event() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    bob.take(RequestReceived)
    net.drop(b"SIP/2.0 200")
    alice.endpoint.cancel(client, net.now)
    net.run()
    net.advance(0.5)  # Timer E on the CANCEL
    assert len(net.sent(b"CANCEL")) == 2 and len(net.sent(b"SIP/2.0 200")) == 2
    assert len(bob.take(CancelReceived)) == 1


def test_invite_given_up_64_t1_after_cancel_without_final_response() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    alice.endpoint.cancel(client, net.now)
    net.drop(b"SIP/2.0 487", times=100)
    net.run()
    bob.endpoint.send_response(offer.transaction, make_response(offer.request, 487, to_tag="x"), net.now)
    net.run()
    net.advance(32.1)
    [timeout] = alice.take(TransactionTimedOut)
    assert timeout.transaction is client and client.state is State.TERMINATED
