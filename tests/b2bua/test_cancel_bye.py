"""CANCEL and BYE races through the B2BUA: a CANCEL crossing an answer on either leg, before any
provisional, after the final answer; BYE glare, BYE retransmissions and BYE with a re-INVITE pending.
Real sans-IO endpoints in memory, no sockets, a hand-moved clock."""

from __future__ import annotations

import re

import pytest

from gateway.config import StaticRoute
from gateway.sip.message import Request, make_response
from tests.b2bua.harness import GW, SDP_A, SDP_B, Network, Phone, make_gateway, no_state_left

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]
ALICE, BOB = "10.0.0.1", "10.0.0.2"
SDP_A2 = SDP_A.replace(b"4000", b"4002")


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def parts(net: Network) -> tuple[object, object, Phone, Phone]:
    b2bua, recorder = make_gateway(net, ROUTES)
    return b2bua, recorder, Phone(net, ALICE, 5061, "alice"), Phone(net, BOB, 5062, "bob")


def _connect(alice: Phone, bob: Phone) -> None:
    alice.call("2000")
    bob.answer(180, SDP_B)
    bob.answer(200, SDP_B, method="INVITE")
    alice.ack()


def _answer_cancelled_invite(bob: Phone, net: Network) -> None:
    [cancel] = bob.cancels()
    invite = cancel.invite_transaction
    bob.node.endpoint.send_response(invite, make_response(invite.request, 487, to_tag="b487"), net.now)
    net.run()


def _dropping(net: Network, host: str, start: bytes, method: bytes = b"INVITE") -> None:
    """Lose the datagrams to `host` that start with `start` and belong to a `method` transaction."""
    net.drop = lambda data, target: (target[1] == host and data.startswith(start)
                                     and re.search(rb"\r\nCSeq: *\d+ " + method + rb"\r\n", data, re.I) is not None)


# -- CANCEL ------------------------------------------------------------------------------------
def test_cancel_crossing_the_answer_to_the_caller_leaves_the_call_up(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(180)
    _dropping(net, ALICE, b"SIP/2.0 200")  # the gateway's 200 is on its way when alice cancels
    bob.answer(200, SDP_B, method="INVITE")
    alice.cancel()
    assert alice.statuses("CANCEL") == [200]
    net.drop = lambda data, target: False
    net.advance(1.0)  # the gateway retransmits its 2xx (§13.3.1.4)
    # §9.1: a CANCEL has no effect on a request that already got its final answer: the call is up.
    assert alice.finals() == [200] and bob.cancels() == []
    alice.ack()
    assert len(bob.requests("ACK")) == 1
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]  # type: ignore[attr-defined]
    alice.send_in_dialog("BYE")  # the caller that wanted out now hangs up
    [bye] = bob.requests("BYE")
    bob.answer(200, method="BYE")
    assert bye.request.call_id == bob.requests("INVITE")[0].request.call_id
    net.advance(40)
    assert recorder.kinds()[-1] == "CallEnded" and no_state_left(b2bua)  # type: ignore[attr-defined,arg-type]


def test_answer_crossing_the_cancel_on_leg_b_is_acked_and_byed(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(180)
    _dropping(net, GW[0], b"SIP/2.0 200")  # bob's 200 is on its way when the gateway cancels
    bob.answer(200, SDP_B, method="INVITE")
    alice.cancel()
    assert alice.finals() == [487]
    assert bob.cancels() == []  # bob's INVITE transaction is already answered: 200 to the CANCEL only
    net.drop = lambda data, target: False
    net.advance(1.0)  # bob retransmits his 200; the gateway must complete and close leg B
    assert len(bob.requests("ACK")) == 1
    [bye] = bob.requests("BYE")
    assert bye.request.to_tag == bob.requests("ACK")[0].request.to_tag
    bob.answer(200, method="BYE")
    assert alice.finals() == [487] and alice.requests() == []
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_cancel_before_leg_b_sent_any_provisional_waits_for_one(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    _dropping(net, GW[0], b"SIP/2.0 100")  # leg B stays in Calling: no provisional at all
    alice.call("2000")
    alice.cancel()
    assert alice.finals() == [487]
    # §9.1: a CANCEL must not be sent before a provisional response arrived.
    assert bob.cancels() == []
    net.drop = lambda data, target: False
    bob.answer(180)
    assert len(bob.cancels()) == 1
    _answer_cancelled_invite(bob, net)
    assert alice.finals() == [487]  # bob's 487 is absorbed, never a second final
    net.advance(40)
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_cancel_when_leg_b_never_answers_anything_still_cleans_up(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    net.drop = lambda data, target: target[1] == BOB  # leg B's INVITE never arrives
    alice.call("2000")
    alice.cancel()
    assert alice.finals() == [487]
    net.advance(40)  # Timer B ends leg B's INVITE; its CANCEL was never sent
    assert bob.requests() == [] and bob.cancels() == []
    assert alice.finals() == [487]
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_cancel_when_leg_b_rings_and_never_answers_the_cancel_cleans_up(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(180)
    alice.cancel()
    assert len(bob.cancels()) == 1  # bob answers the CANCEL (its endpoint does) but never the INVITE
    net.advance(40)  # §9.1: 64*T1 after the CANCEL the gateway gives up on leg B's INVITE
    assert alice.finals() == [487]
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_cancel_after_the_final_answer_changes_nothing(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(486)
    assert alice.finals() == [486]
    assert alice.invite is not None
    # alice's own endpoint refuses to CANCEL an answered INVITE; this one is built by hand (§9.1).
    headers = [(name, value) for name, value in alice.invite.headers if name in ("Via", "From", "To", "Call-ID")]
    cancel = Request("CANCEL", alice.invite.uri, [*headers, ("CSeq", "1 CANCEL"), ("Max-Forwards", "70")])
    alice.node.endpoint.send_stateless(cancel, ("udp", *GW))
    net.run()
    assert any(data.startswith(b"SIP/2.0 200") and b" CANCEL\r\n" in data for data in net.wire)
    assert alice.finals() == [486] and bob.cancels() == []
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_cancel_of_an_unknown_invite_is_481(parts) -> None:
    _, _, alice, bob = parts
    cancel = Request("CANCEL", f"sip:2000@{GW[0]}", [
        ("From", "<sip:alice@10.0.0.1>;tag=c1"), ("To", f"<sip:2000@{GW[0]}>"),
        ("Call-ID", "never-invited@10.0.0.1"), ("CSeq", "1 CANCEL"),
    ])
    alice.send(cancel)
    assert alice.statuses("CANCEL") == [481]  # §9.2
    assert bob.requests() == []


# -- BYE ---------------------------------------------------------------------------------------
def test_bye_glare_ends_the_call_once_and_answers_both(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    _connect(alice, bob)
    assert alice.dialog is not None and bob.dialog is not None
    # Both hang up at the same moment: neither BYE has been answered when the other is sent.
    alice.node.endpoint.send_request(alice.dialog.create_request("BYE"), ("udp", *GW), net.now)
    bob.node.endpoint.send_request(bob.dialog.create_request("BYE"), ("udp", *GW), net.now)
    net.run()
    assert alice.finals("BYE") == [200]
    # §15.1.1: a 481 to a BYE also ends the dialog for its sender; either answer is final for bob.
    assert len(bob.finals("BYE")) == 1 and bob.finals("BYE")[0] in (200, 481)
    for phone in (alice, bob):
        for event in phone.requests("BYE"):
            phone.node.endpoint.send_response(event.transaction, make_response(event.request, 200), net.now)
    net.run()
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_retransmitted_bye_is_answered_again_and_crosses_once(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    _connect(alice, bob)
    _dropping(net, ALICE, b"SIP/2.0 200", b"BYE")  # the gateway's 200 to the BYE is lost once
    alice.send_in_dialog("BYE")
    assert alice.statuses("BYE") == []
    net.drop = lambda data, target: False
    net.advance(1.0)  # alice retransmits (Timer E); the gateway's transaction answers it again
    assert alice.finals("BYE") == [200]
    assert len(bob.requests("BYE")) == 1
    bob.answer(200, method="BYE")
    assert recorder.kinds().count("CallEnded") == 1  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_bye_to_a_silent_leg_still_frees_the_call(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    _connect(alice, bob)
    net.drop = lambda data, target: target[1] == BOB  # bob vanished
    alice.send_in_dialog("BYE")
    assert alice.finals("BYE") == [200]
    net.advance(40)  # Timer F on the gateway's BYE
    assert recorder.events[-1].ended_by == "caller"  # type: ignore[attr-defined]
    assert no_state_left(b2bua)  # type: ignore[arg-type]


@pytest.mark.parametrize("bob_says", [487, 200])
def test_caller_bye_with_its_reinvite_pending_answers_it_487(net: Network, parts, bob_says: int) -> None:
    b2bua, recorder, alice, bob = parts
    _connect(alice, bob)
    alice.send_in_dialog("INVITE", SDP_A2)
    alice.send_in_dialog("BYE")
    assert alice.finals("BYE") == [200]
    # §15.1.2: pending requests of the dialog get a final answer, 487 recommended.
    assert alice.finals()[-1] == 487
    assert len(bob.requests("BYE")) == 1
    reinvites = [e for e in bob.requests("INVITE") if e.request.to_tag is not None]
    bob.answer(bob_says, SDP_B if bob_says == 200 else b"", index=-1, method="INVITE")
    bob.answer(200, method="BYE")
    assert alice.finals()[-1] == 487 and alice.finals().count(487) == 1
    if bob_says == 200:
        # bob's answer crossed the BYE: its 2xx still needs its ACK (§13.2.2.4), with the re-INVITE's CSeq.
        [*_, ack] = bob.requests("ACK")
        assert ack.request.cseq == (reinvites[0].request.cseq[0], "ACK")
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_callee_bye_with_the_callers_reinvite_pending(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    _connect(alice, bob)
    alice.send_in_dialog("INVITE", SDP_A2)
    bob.send_in_dialog("BYE")
    assert bob.finals("BYE") == [200]
    assert len(alice.requests("BYE")) == 1
    assert alice.finals()[-1] == 487  # the session is gone: alice's re-INVITE cannot succeed
    alice.answer(200, method="BYE")
    bob.answer(487, method="INVITE")  # bob, as its UAS, ends it too (§15.1.2): absorbed
    assert alice.finals().count(487) == 1
    assert recorder.events[-1].ended_by == "callee"  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_bye_with_an_info_pending_towards_the_hanging_up_side(net: Network, parts) -> None:
    b2bua, _, alice, bob = parts
    _connect(alice, bob)
    bob.send_in_dialog("INFO")  # relayed to alice, who hangs up instead of answering it
    assert len(alice.requests("INFO")) == 1
    alice.send_in_dialog("BYE")
    assert bob.finals("INFO") == [487]
    alice.answer(200, method="INFO")  # too late: absorbed
    assert bob.finals("INFO") == [487]
    bob.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]
