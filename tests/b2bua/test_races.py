"""B2BUA races and odd orderings: early BYE, missing ACK, hunting and unusable targets, proven with
the real sans-IO endpoints in memory (no sockets, a hand-moved clock)."""

from __future__ import annotations

import re

import pytest

from gateway.config import StaticRoute
from gateway.registrar import Binding
from gateway.sip.events import CancelReceived
from gateway.sip.message import make_response
from tests.b2bua.harness import SDP_B, Network, Phone, bind, make_gateway
from tests.helpers.sip_dialog import Dialog

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]
PHONES = [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")]


@pytest.fixture
def net() -> Network:
    return Network()


def _answer_cancel_with_487(bob: Phone, net: Network) -> None:
    [cancel] = [e for e in bob.node.events if isinstance(e, CancelReceived)]
    invite = cancel.invite_transaction
    bob.node.endpoint.send_response(invite, make_response(invite.request, 487, to_tag="b487"), net.now)
    net.run()


def _no_state_left(b2bua: object) -> bool:
    return (b2bua.calls, b2bua._dialogs, b2bua._transactions, b2bua._invites) == (set(), {}, {}, {})  # type: ignore[attr-defined]


def test_registered_contact_on_a_transport_we_do_not_listen_on_is_503_not_a_hung_call(net: Network) -> None:
    b2bua, recorder = make_gateway(net, PHONES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    b2bua.registrar.store.put("1001", Binding("sip:1001@10.0.0.2:5062;transport=tls", net.now + 600, "r1", 1,
                                              ("udp", "10.0.0.2", 5062), net.now))
    alice.call("1001")
    assert alice.statuses()[-1] == 503
    assert recorder.kinds() == ["CallOffered", "CallFailed"]
    assert _no_state_left(b2bua)


def test_caller_bye_on_early_dialog_answers_487_and_cancels_leg_b(net: Network) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(180, SDP_B)
    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    alice.send_in_dialog("BYE")  # §15: the caller MAY end an early dialog with BYE
    assert alice.statuses("BYE") == [200]
    assert alice.statuses()[-1] == 487  # §15.1.2: the pending INVITE gets its final answer
    assert bob.requests("BYE") == [] and len([e for e in bob.node.events if isinstance(e, CancelReceived)]) == 1
    _answer_cancel_with_487(bob, net)
    net.advance(40)
    assert recorder.kinds() == ["CallOffered", "CallFailed"]
    assert _no_state_left(b2bua)


def test_callee_bye_on_early_dialog_never_sends_bye_to_the_caller(net: Network) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(180, SDP_B)
    invite = bob.requests("INVITE")[0].request
    bob.dialog = Dialog.from_uas(invite, f"b{id(invite) % 100000}", bob.contact)  # the tag Phone.answer used
    bob.send_in_dialog("BYE")
    assert bob.statuses("BYE") == [200]
    # §15: the callee's side MUST NOT send BYE on an early dialog; the caller's INVITE still waits.
    assert alice.requests("BYE") == []
    _answer_cancel_with_487(bob, net)
    assert alice.statuses()[-1] == 487
    net.advance(40)
    assert recorder.kinds() == ["CallOffered", "CallFailed"]
    assert _no_state_left(b2bua)


def _bob_answers_alice(net: Network) -> tuple[object, object, Phone, Phone]:
    """Alice calls bob through the gateway and bob answers: the gateway's 200 is on its way to alice."""
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(200, SDP_B)
    return b2bua, recorder, alice, bob


def test_missing_ack_from_caller_also_byes_the_caller(net: Network) -> None:
    _, _, alice, bob = _bob_answers_alice(net)
    net.advance(40)  # alice never ACKs: §13.3.1.4 says the session is then ended with a BYE
    assert len(alice.requests("BYE")) == 1 and len(bob.requests("BYE")) == 1


def test_caller_bye_after_a_lost_ack_stops_our_2xx_and_ends_the_call_once(net: Network) -> None:
    b2bua, recorder, alice, bob = _bob_answers_alice(net)
    net.advance(1)  # alice's ACK is lost: our 200 comes again
    retransmitted = alice.finals().count(200)
    assert retransmitted >= 2
    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    alice.send_in_dialog("BYE")  # it has our 200 (its BYE carries our tag) even if we never saw its ACK
    assert alice.statuses("BYE") == [200] and len(bob.requests("BYE")) == 1
    net.advance(40)
    assert alice.finals().count(200) == retransmitted  # §13.3.1.4's retransmissions stopped at the BYE
    assert alice.requests("BYE") == []  # no "ACK never came" BYE for a call alice ended herself
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]  # type: ignore[attr-defined]
    assert recorder.events[-1].ended_by == "caller"  # type: ignore[attr-defined]
    bob.answer(200)  # the BYE
    net.advance(40)
    assert _no_state_left(b2bua)


def test_hunting_leaves_no_dialog_of_the_failed_targets_behind(net: Network) -> None:
    b2bua, _ = make_gateway(net, PHONES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    desk = Phone(net, "10.0.0.2", 5062, "desk")
    mobile = Phone(net, "10.0.0.3", 5063, "mobile")
    for contact, at in (("sip:1001@10.0.0.3:5063", net.now - 1), ("sip:1001@10.0.0.2:5062", net.now)):
        bind(b2bua, "1001", contact, at)
    alice.call("1001")
    desk.answer(503)
    mobile.answer(486)
    assert alice.statuses()[-1] == 486
    net.advance(40)
    assert _no_state_left(b2bua)


def _callee_hangs_up_before_the_callers_ack(net: Network) -> tuple[object, object, Phone, Phone]:
    b2bua, recorder, alice, bob = _bob_answers_alice(net)
    bob.send_in_dialog("BYE")
    assert bob.statuses("BYE") == [200]
    return b2bua, recorder, alice, bob


def test_callee_bye_before_the_callers_ack_waits_for_that_ack(net: Network) -> None:
    b2bua, recorder, alice, _ = _callee_hangs_up_before_the_callers_ack(net)
    # §15: as leg A's callee the gateway MUST NOT send BYE before the ACK of its 2xx.
    assert alice.requests("BYE") == []
    alice.ack()
    assert len(alice.requests("BYE")) == 1
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]  # type: ignore[attr-defined]
    assert recorder.events[-1].ended_by == "callee"  # type: ignore[attr-defined]
    net.advance(40)
    assert _no_state_left(b2bua)


def test_callee_bye_and_no_ack_from_the_caller_byes_it_after_the_timeout(net: Network) -> None:
    b2bua, recorder, alice, _ = _callee_hangs_up_before_the_callers_ack(net)
    net.advance(40)  # §15: or until the server transaction times out
    assert len(alice.requests("BYE")) == 1
    alice.answer(200)  # the BYE
    assert recorder.kinds().count("CallEnded") == 1  # type: ignore[attr-defined]
    assert _no_state_left(b2bua)
