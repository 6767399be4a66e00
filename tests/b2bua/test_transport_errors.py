"""Unreachable targets (RFC 3261 §8.1.3.1, §17.1.4): a refused TCP connection is a 503 at once.

Real sans-IO endpoints in memory; a "tcp" target with no node behind it is a refused connection
(see `tests.b2bua.harness`). UDP silence stays Timer B's business (408), tested in test_setup.
"""

from __future__ import annotations

import re

import pytest

from gateway.b2bua import propagation
from gateway.config import StaticRoute
from tests.b2bua.harness import SDP_A, SDP_B, Network, Phone, bind, make_gateway, no_state_left

NOBODY = "10.0.0.9"  # no node there: TCP connects are refused
ROUTES = [
    StaticRoute("tcp-trunk", re.compile(r"^3\d{3}$"), f"sip:{NOBODY}:5070;transport=tcp"),
    StaticRoute("tcp-bob", re.compile(r"^4\d{3}$"), "sip:10.0.0.2:5062;transport=tcp"),
]
PHONES = [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")]


@pytest.fixture
def net() -> Network:
    return Network()


def test_refused_tcp_target_answers_503_at_once(net: Network) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("3000")
    # No clock moved: the answer comes from the refused connect, not from Timer B (which gives 408).
    assert alice.statuses() == [100, propagation.UNREACHABLE]
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    assert recorder.events[-1].status == 503  # type: ignore[attr-defined]
    assert b2bua.port.stats["transport_errors"] == 1  # type: ignore[attr-defined]
    alice.network.advance(40)
    assert alice.finals() == [503]  # and nothing later (no 408 after Timer B)
    assert no_state_left(b2bua)


def test_refused_tcp_contact_hunts_to_the_next_registration_at_once(net: Network) -> None:
    b2bua, recorder = make_gateway(net, PHONES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    mobile = Phone(net, "10.0.0.3", 5063, "mobile")
    # The desk phone registered over TCP from NOBODY:40000; that connection is gone, its host too.
    bind(b2bua, "1001", "sip:1001@10.0.0.3:5063", net.now - 1)
    bind(b2bua, "1001", f"sip:1001@{NOBODY}:5070;transport=tcp", net.now, ("tcp", NOBODY, 40000))
    alice.call("1001")
    [invite] = mobile.requests("INVITE")  # hunted without waiting for Timer B
    assert invite.request.body == SDP_A
    assert alice.finals() == []
    mobile.answer(200, SDP_B)
    assert alice.finals() == [200]
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]  # type: ignore[attr-defined]


def test_relayed_request_to_a_leg_whose_tcp_peer_is_gone_is_503(net: Network) -> None:
    b2bua, _ = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("4000")
    [invite] = bob.requests("INVITE")
    assert invite.source == ("tcp", "127.0.0.1", 5060)  # leg B runs over TCP
    bob.answer(200, SDP_B)
    alice.ack()
    del net.nodes[("10.0.0.2", 5062)]  # bob's host went away: a new connection is refused
    alice.send_in_dialog("INFO")
    assert alice.finals("INFO") == [503]
    alice.send_in_dialog("BYE")
    assert alice.finals("BYE") == [200]
    net.advance(40)
    assert no_state_left(b2bua)


def test_udp_silence_is_still_timer_b_408(net: Network) -> None:
    """The UDP counterpart: no transport error is invented for a silent UDP target (ICMP is not used)."""
    b2bua, _ = make_gateway(net, [StaticRoute("udp", re.compile(r"^5\d{3}$"), f"sip:{NOBODY}:5070")])
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("5000")
    assert alice.finals() == []
    net.advance(33)
    assert alice.finals() == [408]
    assert b2bua.port.stats["transport_errors"] == 0  # type: ignore[attr-defined]
