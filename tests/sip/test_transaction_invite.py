"""INVITE transactions (RFC 3261 §17.1.1, §17.2.1, §13.3.1.4, RFC 6026) between two in-memory endpoints."""

from __future__ import annotations

import pytest

from gateway.sip.errors import LocalProtocolError
from gateway.sip.events import (
    AckNotReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from gateway.sip.message import Response
from gateway.sip.transaction import State
from tests.helpers.sip_dialog import Dialog
from tests.sip.memnet import MemNet, Node


def _pair(transport: str = "udp", stream_chunk: int | None = None) -> tuple[MemNet, Node, Node]:
    net = MemNet(stream_chunk=stream_chunk)
    return net, net.add("alice", 5161), net.add("bob", 5162)


def _statuses(node: Node) -> list[int]:
    return [event.response.status for event in node.take(ResponseReceived)]


def _ack_for(node: Node, invite, response, target) -> None:
    ack = Dialog.from_uac(invite, response).create_ack(invite.cseq[0])
    node.endpoint.send_stateless(ack, target)


def test_invite_100_180_200_ack_completes_both_sides() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob)
    client = alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    assert offer.request.method == "INVITE" and offer.transaction is not None
    assert _statuses(alice) == [100]  # §17.2.1: the 100 goes out before the TU acts
    tag = bob.endpoint.new_tag()
    bob.respond(offer, 180, tag, net.now)
    ok = bob.respond(offer, 200, tag, net.now)
    net.run()
    responses = alice.take(ResponseReceived)
    assert [r.response.status for r in responses] == [180, 200]
    assert all(r.transaction is client for r in responses)
    assert client.state is State.ACCEPTED and offer.transaction.state is State.ACCEPTED
    _ack_for(alice, invite, responses[-1].response, bob.target())
    net.run()
    [ack] = bob.take(RequestReceived)
    assert ack.request.method == "ACK" and ack.transaction is None
    assert ack.request.to_tag == ok.to_tag
    net.advance(64 * 0.5 + 0.1)  # Timers L and M
    assert client.state is State.TERMINATED and offer.transaction.state is State.TERMINATED
    assert {e.transaction for e in alice.take(TransactionTerminated)} == {client}
    assert not bob.take(AckNotReceived)
    assert len(net.sent(b"SIP/2.0 200")) == 1  # the ACK came at once: no 2xx retransmission


def test_timer_a_retransmits_dropped_invite_and_tu_sees_it_once() -> None:
    net, alice, bob = _pair()
    net.drop(b"INVITE", times=2)
    client = alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    start = net.now
    net.advance(0.5)  # Timer A = T1: second copy, also lost
    net.advance(1.0)  # Timer A doubled: third copy arrives
    invites = net.sent(b"INVITE")
    assert [round(p.at - start, 3) for p in invites] == [0.0, 0.5, 1.5]
    assert [p.dropped for p in invites] == [True, True, False]
    assert len(bob.take(RequestReceived)) == 1
    assert _statuses(alice) == [100]
    assert client.state is State.PROCEEDING
    net.advance(10)  # Proceeding: no more retransmissions (§17.1.1.2)
    assert len(net.sent(b"INVITE")) == 3


def test_timer_b_times_out_unanswered_invite() -> None:
    net, alice, bob = _pair()
    nowhere = ("udp", "127.0.0.1", 5999)
    client = alice.endpoint.send_request(alice.request("INVITE", bob), nowhere, net.now)
    net.run()
    net.advance(31.9)
    assert not alice.take(TransactionTimedOut)
    net.advance(0.2)
    [timeout] = alice.take(TransactionTimedOut)
    assert timeout.transaction is client and client.state is State.TERMINATED
    # A at 0.5, 1, 2, 4, 8, 16 s after the first: 7 copies in 64*T1 (§17.1.1.2).
    assert len(net.sent(b"INVITE")) == 7
    assert alice.endpoint.stats["transactions_timed_out"] == 1
    net.advance(100)
    assert len(net.sent(b"INVITE")) == 7


def test_dropped_200_is_retransmitted_until_the_ack_arrives() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob)
    alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"SIP/2.0 200", times=2)
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    assert _statuses(alice) == [100]
    net.advance(0.5)
    net.advance(1.0)  # 2xx timer doubles from T1 (§13.3.1.4): copies at +0.5 and +1.5
    [ok] = [r for r in alice.take(ResponseReceived) if r.response.status == 200]
    _ack_for(alice, invite, ok.response, bob.target())
    net.run()
    assert len(bob.take(RequestReceived)) == 1
    net.advance(40)
    assert len(net.sent(b"SIP/2.0 200")) == 3
    assert not bob.take(AckNotReceived)


def test_dropped_ack_brings_the_2xx_back_to_the_tu_which_acks_again() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob)
    client = alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    [ok] = [r for r in alice.take(ResponseReceived) if r.response.status == 200]
    net.drop(b"ACK")
    _ack_for(alice, invite, ok.response, bob.target())
    net.run()
    net.advance(0.5)
    # RFC 6026 Accepted (Timer M): the retransmitted 2xx is passed up again.
    [again] = alice.take(ResponseReceived)
    assert again.response.status == 200 and again.transaction is client
    _ack_for(alice, invite, again.response, bob.target())
    net.run()
    assert [e.request.method for e in bob.take(RequestReceived)] == ["ACK"]
    net.advance(40)
    assert len(net.sent(b"SIP/2.0 200")) == 2
    assert not bob.take(AckNotReceived)


def test_2xx_never_acked_reports_ack_not_received_after_64_t1() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"SIP/2.0 200", times=100)
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    start = net.now
    net.run()
    net.advance(31.9)
    assert not bob.take(AckNotReceived)
    net.advance(0.2)
    [missing] = bob.take(AckNotReceived)
    assert missing.transaction is offer.transaction
    assert net.gaps(b"SIP/2.0 200")[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # T1 doubling, capped at T2
    assert net.sent(b"SIP/2.0 200")[-1].at - start < 32
    assert bob.endpoint.stats["ack_not_received"] == 1


def test_486_is_acked_by_the_client_transaction_and_absorbed_by_the_server() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob)
    client = alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    bob.respond(offer, 486, bob.endpoint.new_tag(), net.now)
    net.run()
    assert _statuses(alice) == [100, 486]
    [ack] = net.sent(b"ACK")
    # §17.1.1.3: same branch as the INVITE, To with the response's tag.
    assert invite.top_via.branch.encode() in ack.data
    assert bob.take(RequestReceived) == []  # the server transaction absorbed it
    assert client.state is State.COMPLETED and offer.transaction.state is State.CONFIRMED
    net.advance(5.1)  # Timer I = T4
    assert offer.transaction.state is State.TERMINATED
    net.advance(32)  # Timer D
    assert client.state is State.TERMINATED


def test_lost_ack_of_486_brings_a_486_retransmission_answered_by_a_new_ack() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"ACK")
    bob.respond(offer, 486, bob.endpoint.new_tag(), net.now)
    net.run()
    net.advance(0.5)  # Timer G
    assert len(net.sent(b"SIP/2.0 486")) == 2
    assert [p.dropped for p in net.sent(b"ACK")] == [True, False]
    assert _statuses(alice) == [100, 486]  # the TU hears the 486 once
    assert offer.transaction.state is State.CONFIRMED
    net.advance(10)
    assert len(net.sent(b"SIP/2.0 486")) == 2


def test_timer_h_ends_the_server_transaction_when_no_ack_comes() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"ACK", times=100)
    bob.respond(offer, 603, bob.endpoint.new_tag(), net.now)
    net.run()
    net.advance(31.9)
    assert offer.transaction.state is State.COMPLETED
    net.advance(0.2)
    assert offer.transaction.state is State.TERMINATED
    assert net.gaps(b"SIP/2.0 603")[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # Timer G: T1 doubling, capped at T2


def test_retransmitted_invite_is_absorbed_and_answered_with_the_last_provisional() -> None:
    net, alice, bob = _pair()
    net.drop(b"SIP/2.0 100")
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"SIP/2.0 180")
    bob.respond(offer, 180, bob.endpoint.new_tag(), net.now)
    net.run()
    net.advance(0.5)  # Timer A: INVITE again; the server resends its 180
    assert bob.take(RequestReceived) == []
    assert len(net.sent(b"INVITE")) == 2
    assert _statuses(alice) == [180]


def test_sending_after_the_final_response_is_a_local_error() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    bob.respond(offer, 480, bob.endpoint.new_tag(), net.now)
    with pytest.raises(LocalProtocolError):
        bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)


def test_stray_2xx_after_the_transaction_ended_still_reaches_the_tu() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("INVITE", bob), bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    net.drop(b"ACK", times=100)
    ok = bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    net.advance(33)  # Timer M ended the client transaction; Timer L the server one
    alice.events.clear()
    bob.endpoint.send_stateless(ok, alice.target())
    net.run()
    [stray] = alice.take(ResponseReceived)
    assert stray.transaction is None and stray.response.status == 200


def test_tcp_invite_arms_no_retransmission_timers_and_timer_d_is_zero() -> None:
    net, alice, bob = _pair(stream_chunk=1)
    invite = alice.request("INVITE", bob, transport="tcp")
    client = alice.endpoint.send_request(invite, bob.target("tcp"), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    assert offer.source == ("tcp", "127.0.0.1", 5161)
    bob.respond(offer, 404, bob.endpoint.new_tag(), net.now)
    net.run()
    assert _statuses(alice) == [100, 404]
    assert client.state is State.TERMINATED  # §17.1.1.2: Timer D is zero on reliable transports
    assert offer.transaction.state is State.TERMINATED  # Timer I is zero too
    net.advance(40)
    assert len(net.sent(b"INVITE")) == 1 and len(net.sent(b"SIP/2.0 404")) == 1


def test_2xx_from_a_second_fork_is_passed_up_in_accepted() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob)
    client = alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    first = bob.respond(offer, 200, "fork-a", net.now)
    net.run()
    second = Response(200, "OK", [(n, v.replace("fork-a", "fork-b")) for n, v in first.headers])
    bob.endpoint.send_stateless(second, alice.target())  # what a forking proxy would relay
    net.run()
    tags = [e.response.to_tag for e in alice.take(ResponseReceived) if e.response.status == 200]
    assert tags == ["fork-a", "fork-b"]  # RFC 6026 §8.4: each 2xx reaches the TU, which ACKs and BYEs
    assert client.state is State.ACCEPTED


def test_2xx_is_retransmitted_over_tcp_too_until_acked() -> None:
    net, alice, bob = _pair()
    invite = alice.request("INVITE", bob, transport="tcp")
    alice.endpoint.send_request(invite, bob.target("tcp"), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    bob.respond(offer, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    net.advance(1.6)
    # §13.3.1.4: the UAS core retransmits whatever the transport (a later hop may be UDP).
    assert net.gaps(b"SIP/2.0 200") == [0.5, 1.0]
    [ok, *_] = [e for e in alice.take(ResponseReceived) if e.response.status == 200]
    _ack_for(alice, invite, ok.response, bob.target("tcp"))
    net.run()
    net.advance(40)
    assert len(net.sent(b"SIP/2.0 200")) == 3 and not bob.take(AckNotReceived)


def test_nat_rewritten_source_gets_its_responses_via_received_and_rport() -> None:
    net, alice, bob = _pair()
    # alice believes she is 10.1.1.1:5070 (private); the network delivers from 127.0.0.1:5161.
    alice.endpoint.sent_by["udp"] = ("10.1.1.1", 5070)
    client = alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    assert received.transaction.response_target == ("udp", "127.0.0.1", 5161)
    bob.respond(received, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    [answer] = alice.take(ResponseReceived)
    assert answer.transaction is client
    via = answer.response.top_via
    assert (via.params["received"], via.params["rport"]) == ("127.0.0.1", "5161")  # RFC 3581 §4


def test_rfc2543_request_without_magic_cookie_is_still_matched() -> None:
    net, alice, bob = _pair()
    data = (
        b"INVITE sip:bob@127.0.0.1:5162 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5161\r\n"
        b"From: <sip:old@x>;tag=9\r\nTo: <sip:bob@x>\r\nCall-ID: old-1\r\nCSeq: 3 INVITE\r\n"
        b"Contact: <sip:old@127.0.0.1:5161>\r\nContent-Length: 0\r\n\r\n"
    )
    for _ in range(2):
        bob.endpoint.receive_datagram(data, ("udp", "127.0.0.1", 5161), net.now)
    net.run()
    assert len(bob.take(RequestReceived)) == 1  # §17.2.3: the second copy is a retransmission
    assert len(net.sent(b"SIP/2.0 100")) == 2
