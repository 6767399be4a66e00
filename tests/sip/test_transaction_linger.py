"""Lingering slim (RFC 3261 §17.1.1.2, §17.2.1, §17.2.2, RFC 6026): once a transaction's outcome is
settled it drops its request and response objects, and still answers every retransmission with
the very bytes it sent first."""

from __future__ import annotations

import gc

import pytest

from gateway.sip.errors import LocalProtocolError
from gateway.sip.events import AckNotReceived, RequestReceived, ResponseReceived
from gateway.sip.message import Request, Response
from gateway.sip.transaction import State
from tests.helpers.sip_dialog import Dialog
from tests.sip.memnet import MemNet, Node


def _pair() -> tuple[MemNet, Node, Node]:
    net = MemNet()
    return net, net.add("alice", 5161), net.add("bob", 5162)


def _replay(net: MemNet, node: Node, data: bytes, source: Node) -> None:
    """`data` arrives again at `node`, as a retransmission from `source` would."""
    node.endpoint.receive_datagram(data, source.target(), net.now)
    net.run()


def _offered_invite(net: MemNet, alice: Node, bob: Node) -> RequestReceived:
    """Alice's INVITE, as bob's TU gets it (its server transaction in `.transaction`)."""
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    return offer


def _messages_held_by(obj: object) -> list[object]:
    return [o for o in gc.get_referents(obj) if isinstance(o, Request | Response)]


def test_t_lingering_non_invite_server_answers_a_retransmitted_bye_with_the_same_bytes() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("BYE", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    [bye] = net.sent(b"BYE")
    bob.respond(received, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    server = received.transaction
    assert server.state is State.COMPLETED and server.lingering
    assert server.last_response is None and _messages_held_by(server) == []
    with pytest.raises(LocalProtocolError, match="lingers"):
        _ = server.request
    _replay(net, bob, bye.data, alice)
    first, again = net.sent(b"SIP/2.0 200")
    assert again.data == first.data and again.destination == first.destination
    assert bob.take(RequestReceived) == []  # absorbed: the TU heard the BYE once
    net.advance(32.1)  # Timer J
    assert server.state is State.TERMINATED


def test_t_lingering_invite_server_resends_its_486_to_a_retransmitted_invite_and_still_takes_the_ack() -> None:
    net, alice, bob = _pair()
    net.drop(b"ACK")
    offer = _offered_invite(net, alice, bob)
    [invite] = net.sent(b"INVITE")
    bob.respond(offer, 486, bob.endpoint.new_tag(), net.now)
    net.run()
    server = offer.transaction
    assert server.state is State.COMPLETED and server.lingering and _messages_held_by(server) == []
    _replay(net, bob, invite.data, alice)
    first, again = net.sent(b"SIP/2.0 486")[:2]
    assert again.data == first.data
    net.advance(0.6)  # the ACK of the resent 486 is not dropped: Confirmed
    assert server.state is State.CONFIRMED


def test_t_lingering_invite_client_answers_a_retransmitted_486_with_the_same_ack() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    bob.respond(offer, 486, bob.endpoint.new_tag(), net.now)
    net.run()
    assert client.state is State.COMPLETED and client.lingering and _messages_held_by(client) == []
    [busy] = net.sent(b"SIP/2.0 486")
    _replay(net, alice, busy.data, bob)
    first, again = net.sent(b"ACK")
    assert again.data == first.data
    assert [e.response.status for e in alice.take(ResponseReceived)] == [100, 486]  # the TU heard it once


def test_t_invite_server_keeps_its_request_until_the_2xx_is_acked_then_absorbs_invites() -> None:
    net, alice, bob = _pair()
    offer = _offered_invite(net, alice, bob)
    [invite] = net.sent(b"INVITE")
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    server = offer.transaction
    # Unacknowledged: Timer L's AckNotReceived hands the TU this request.
    assert not server.lingering and server.request is offer.request
    server.receive_2xx_ack(net.now)
    assert server.state is State.ACCEPTED and server.lingering and _messages_held_by(server) == []
    _replay(net, bob, invite.data, alice)
    assert len(net.sent(b"SIP/2.0 200")) == 1  # RFC 6026: an acknowledged 2xx is not resent
    assert bob.take(RequestReceived) == []
    net.advance(32.1)
    assert server.state is State.TERMINATED and bob.take(AckNotReceived) == []


def test_t_a_request_in_the_dialog_stands_for_a_lost_ack_and_a_late_ack_changes_nothing() -> None:
    net, alice, bob = _pair()
    net.drop(b"ACK")
    offer = _offered_invite(net, alice, bob)
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    server = offer.transaction
    net.advance(1.6)  # the ACK is lost: our 2xx is resent at T1, 2*T1
    sent = len(net.sent(b"SIP/2.0 200"))
    assert sent >= 3 and server.awaiting_ack
    # The peer's BYE (the TU's business) shows it has the 2xx: stop as its ACK would have stopped us.
    bob.endpoint.acknowledged_by_request(server, net.now)
    assert not server.awaiting_ack and server.lingering
    bob.endpoint.acknowledged_by_request(server, net.now)  # a second BYE (a retransmission): no-op
    net.advance(32.1)
    assert len(net.sent(b"SIP/2.0 200")) == sent  # not one more 2xx
    assert server.state is State.TERMINATED and bob.take(AckNotReceived) == []
    assert bob.endpoint._awaiting_ack == {}


def test_t_cancel_after_the_final_answer_still_gets_the_invite_responses_to_tag() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    tag = bob.endpoint.new_tag()
    net.drop(b"SIP/2.0 486", times=10)
    bob.respond(offer, 486, tag, net.now)
    net.run()
    assert offer.transaction.lingering
    alice.endpoint.cancel(client, net.now)  # the 486 was lost: the client still thinks it rings
    net.run()
    [ok] = net.sent(b"SIP/2.0 200")
    assert f"tag={tag}".encode() in ok.data


def test_t_a_whole_call_leaves_no_reference_cycles_in_the_sip_layer() -> None:
    # The gateway runs with automatic full collections off (gateway/gc_tuning.py): whatever the
    # call path leaves in cycles would pile up until the next full collection.
    net, alice, bob = _pair()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        invite = alice.request("INVITE", bob)
        alice.endpoint.send_request(invite, bob.target(), net.now)
        net.run()
        [offer] = bob.take(RequestReceived)
        ok = bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
        net.run()
        [answer] = [e for e in alice.take(ResponseReceived) if e.response.status == 200]
        alice.endpoint.send_stateless(Dialog.from_uac(invite, answer.response).create_ack(1), bob.target())
        alice.endpoint.send_request(alice.request("BYE", bob, call_id=invite.call_id, cseq=2), bob.target(), net.now)
        net.run()
        [bye] = [e for e in bob.take(RequestReceived) if e.request.method == "BYE"]
        bob.respond(bye, 200, ok.to_tag, net.now)
        net.advance(33)  # every timer of the call has fired or been cancelled
        alice.events.clear()
        bob.events.clear()
        del offer, bye, answer
        gc.collect()
        cyclic = [o for o in gc.garbage if type(o).__module__.startswith("gateway.sip")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cyclic == []
