"""Non-INVITE transactions (RFC 3261 §17.1.2, §17.2.2) between two in-memory endpoints."""

from __future__ import annotations

from gateway.sip.events import RequestReceived, ResponseReceived, TransactionTerminated, TransactionTimedOut
from gateway.sip.timers import TimerSettings
from gateway.sip.transaction import State
from tests.sip.memnet import MemNet, Node


def _pair(stream_chunk: int | None = None) -> tuple[MemNet, Node, Node]:
    net = MemNet(stream_chunk=stream_chunk)
    return net, net.add("alice", 5161), net.add("bob", 5162)


def test_options_200_then_timer_k_and_j_end_both_transactions() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    assert net.sent(b"SIP/2.0 100") == []  # only INVITE gets an automatic 100
    bob.respond(received, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    [answer] = alice.take(ResponseReceived)
    assert answer.response.status == 200 and answer.transaction is client
    assert client.state is State.COMPLETED
    net.advance(5.1)  # Timer K = T4
    assert client.state is State.TERMINATED
    assert received.transaction.state is State.COMPLETED
    net.advance(27)  # Timer J = 64*T1
    assert received.transaction.state is State.TERMINATED
    assert [e.transaction for e in bob.take(TransactionTerminated)] == [received.transaction]


def test_timer_e_retransmits_with_doubling_to_t2_and_timer_f_times_out() -> None:
    net, alice, bob = _pair()
    nowhere = ("udp", "127.0.0.1", 5999)
    client = alice.endpoint.send_request(alice.request("BYE", bob), nowhere, net.now)
    net.run()
    net.advance(31.9)
    assert not alice.take(TransactionTimedOut)
    net.advance(0.2)
    [timeout] = alice.take(TransactionTimedOut)
    assert timeout.transaction is client and client.state is State.TERMINATED
    assert net.gaps(b"BYE") == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert alice.endpoint.stats["retransmissions"] == 10


def test_timer_e_is_t2_flat_once_a_provisional_arrived() -> None:
    net, alice, bob = _pair()
    client = alice.endpoint.send_request(alice.request("MESSAGE", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    bob.respond(received, 100, None, net.now)
    net.run()
    assert client.state is State.PROCEEDING
    net.advance(13)
    # The E armed at T1 still fires; from then on Proceeding retransmits every T2 (§17.1.2.2).
    assert net.gaps(b"MESSAGE") == [0.5, 4.0, 4.0, 4.0]
    assert bob.take(RequestReceived) == []  # retransmissions absorbed, answered with the 100
    assert len(net.sent(b"SIP/2.0 100")) == len(net.sent(b"MESSAGE"))


def test_retransmitted_request_is_absorbed_and_the_final_response_resent() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    net.drop(b"SIP/2.0 200")
    bob.respond(received, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    assert alice.take(ResponseReceived) == []
    net.advance(0.5)  # Timer E: request again; Completed server resends its 200
    assert bob.take(RequestReceived) == []
    assert [e.response.status for e in alice.take(ResponseReceived)] == [200]
    assert len(net.sent(b"SIP/2.0 200")) == 2
    assert bob.endpoint.stats["requests_received.OPTIONS"] == 2


def test_request_retransmitted_before_any_answer_is_absorbed_silently() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    net.run()
    net.advance(0.5)
    assert len(net.sent(b"OPTIONS")) == 2
    assert len(bob.take(RequestReceived)) == 1
    assert [p for p in net.packets if p.source[2] == 5162] == []  # §17.2.2 Trying: nothing to resend


def test_late_final_response_in_completed_is_not_passed_up_again() -> None:
    net, alice, bob = _pair()
    alice.endpoint.send_request(alice.request("OPTIONS", bob), bob.target(), net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    ok = bob.respond(received, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    bob.endpoint.send_stateless(ok, alice.target())  # a duplicate from the network
    net.run()
    assert [e.response.status for e in alice.take(ResponseReceived)] == [200]


def test_tcp_non_invite_has_no_timer_e_and_zero_timer_k_and_j() -> None:
    net, alice, bob = _pair(stream_chunk=7)
    client = alice.endpoint.send_request(alice.request("OPTIONS", bob, transport="tcp"), bob.target("tcp"),
                                         net.now)
    net.run()
    [received] = bob.take(RequestReceived)
    net.advance(4)
    assert len(net.sent(b"OPTIONS")) == 1
    bob.respond(received, 200, bob.endpoint.new_tag(), net.now)
    net.run()
    assert client.state is State.TERMINATED and received.transaction.state is State.TERMINATED


def test_timer_f_follows_configured_t1() -> None:
    net = MemNet()
    alice = net.add("alice", 5161, timers=TimerSettings(t1=0.1, t2=1.0, t4=1.0))
    bob = net.add("bob", 5162)
    alice.endpoint.send_request(alice.request("OPTIONS", bob), ("udp", "127.0.0.1", 5999), net.now)
    net.run()
    net.advance(6.3)
    assert not alice.take(TransactionTimedOut)
    net.advance(0.2)
    assert len(alice.take(TransactionTimedOut)) == 1
