"""B2BUA propagation rules, proven with the real sans-IO endpoints of the gateway and two phones
in memory (no sockets, a hand-moved clock)."""

from __future__ import annotations

import re

import pytest

from gateway.b2bua import propagation
from gateway.config import StaticRoute
from gateway.sip.auth import build_authorization
from gateway.sip.events import CancelReceived
from gateway.sip.message import Request, make_response
from tests.b2bua.harness import GW, SDP_A, SDP_B, USERS, Network, Phone, bind, make_gateway
from tests.helpers.sip_dialog import Dialog

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def parts(net: Network) -> tuple[Phone, Phone, object]:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    return alice, bob, recorder


def _connect(alice: Phone, bob: Phone) -> Request:
    alice.call("2000")
    bob.answer(180, SDP_B)
    bob.answer(200, SDP_B)
    alice.ack()
    return bob.requests("INVITE")[0].request


def test_invite_goes_out_on_a_new_dialog_with_the_sdp_unchanged(parts) -> None:
    alice, bob, _ = parts
    sent = alice.call("2000")
    [received] = bob.requests("INVITE")
    leg_b = received.request
    assert leg_b.call_id != sent.call_id
    assert leg_b.from_tag != sent.from_tag
    assert leg_b.uri == "sip:2000@10.0.0.2:5062"  # the dialled number kept on a trunk target
    assert leg_b.body == SDP_A and leg_b.get("Content-Type") == "application/sdp"
    assert leg_b.get("Contact") == f"<sip:gw@{GW[0]}:{GW[1]}>"
    assert leg_b.max_forwards == 69
    assert "alice" in leg_b.from_.uri  # the caller's identity crosses
    assert alice.statuses() == [100]


def test_provisional_and_answer_are_relayed_with_their_sdp(parts) -> None:
    alice, bob, recorder = parts
    alice.call("2000")
    bob.answer(180, SDP_B)
    bob.answer(200, SDP_B)
    statuses = alice.statuses()
    assert statuses == [100, 180, 200]
    ringing, ok = alice.responses()[1:]
    assert ringing.body == SDP_B and ok.body == SDP_B
    assert ringing.to_tag == ok.to_tag is not None
    assert ok.get("Contact") == f"<sip:gw@{GW[0]}:{GW[1]}>"
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]


def test_ack_of_leg_b_waits_for_leg_a_ack_and_carries_its_sdp(parts) -> None:
    alice, bob, _ = parts
    alice.call("2000", body=b"")  # late offer: the SDP answer comes in the ACK
    bob.answer(200, SDP_B)
    assert bob.requests("ACK") == []
    alice.ack(body=SDP_A)
    [ack] = bob.requests("ACK")
    assert ack.request.body == SDP_A
    assert ack.request.call_id == bob.requests("INVITE")[0].request.call_id


def test_bye_from_caller_ends_both_legs(parts) -> None:
    alice, bob, recorder = parts
    _connect(alice, bob)
    alice.send_in_dialog("BYE")
    assert alice.statuses("BYE") == [200]
    [bye] = bob.requests("BYE")
    assert bye.request.call_id == bob.requests("INVITE")[0].request.call_id
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]
    assert recorder.events[-1].ended_by == "caller"


def test_bye_from_callee_ends_both_legs(parts) -> None:
    alice, bob, recorder = parts
    _connect(alice, bob)
    bob_bye = bob.dialog.create_request("BYE")  # type: ignore[union-attr]
    bob.node.endpoint.send_request(bob_bye, ("udp", *GW), bob.network.now)
    bob.network.run()
    assert [e for e in bob.responses("BYE")][0].status == 200
    [bye] = alice.requests("BYE")
    assert bye.request.call_id == alice.invite.call_id  # type: ignore[union-attr]
    assert recorder.events[-1].ended_by == "callee"


def test_reinvite_is_passed_through_and_its_answer_relayed(parts) -> None:
    alice, bob, _ = parts
    _connect(alice, bob)
    new_offer = SDP_A.replace(b"4000", b"4002")
    alice.send_in_dialog("INVITE", new_offer)
    [_, reinvite] = bob.requests("INVITE")
    assert reinvite.request.to_tag is not None and reinvite.request.body == new_offer
    bob.answer(200, SDP_B, index=-1)
    assert alice.statuses()[-1] == 200 and alice.responses()[-1].body == SDP_B
    alice.ack()
    assert len(bob.requests("ACK")) == 2


def test_update_is_passed_through(parts) -> None:
    alice, bob, _ = parts
    _connect(alice, bob)
    alice.send_in_dialog("UPDATE", SDP_A)
    [update] = bob.requests("UPDATE")
    assert update.request.body == SDP_A
    bob.answer(200, SDP_B)
    assert alice.statuses("UPDATE") == [200]
    assert alice.responses("UPDATE")[0].body == SDP_B


def test_cancel_from_caller_cancels_leg_b_and_answers_487(parts) -> None:
    alice, bob, recorder = parts
    alice.call("2000")
    bob.answer(180)
    alice.cancel()
    assert alice.statuses("CANCEL") == [200]
    assert 487 in alice.statuses()
    [cancel] = [e for e in bob.node.events if isinstance(e, CancelReceived)]
    assert cancel.request.call_id == bob.requests("INVITE")[0].request.call_id
    bob.node.endpoint.send_response(cancel.invite_transaction, make_response(
        cancel.invite_transaction.request, 487, to_tag="b487"), bob.network.now)
    bob.network.run()
    assert alice.statuses().count(487) == 1  # leg B's own 487 is absorbed, not relayed twice
    assert recorder.kinds() == ["CallOffered", "CallFailed"] and recorder.events[-1].status == 487


@pytest.mark.parametrize(
    ("callee_status", "caller_status"),
    [(486, 486), (603, 603), (404, 404), (500, 502), (503, 502), (401, 502), (302, 480), (488, 488)],
)
def test_failures_are_mapped_by_the_table(parts, callee_status: int, caller_status: int) -> None:
    alice, bob, recorder = parts
    alice.call("2000")
    bob.answer(callee_status)
    assert alice.statuses()[-1] == caller_status
    assert propagation.failure_status(callee_status) == caller_status
    assert recorder.kinds() == ["CallOffered", "CallFailed"]


def test_no_answer_from_callee_is_408(net: Network, parts) -> None:
    alice, bob, recorder = parts
    net.drop = lambda data, target: target[1] == "10.0.0.2"  # leg B's INVITE never arrives
    alice.call("2000")
    net.advance(40)
    assert 408 in alice.statuses()
    assert recorder.events[-1].status == 408


def test_missing_ack_from_caller_closes_leg_b(net: Network, parts) -> None:
    alice, bob, recorder = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    net.advance(40)  # alice never ACKs: timer L after 64*T1
    assert len(bob.requests("ACK")) == 1 and len(bob.requests("BYE")) == 1
    assert recorder.events[-1].ended_by == "gateway"


def test_unmatched_user_gets_404_and_no_leg_b(parts) -> None:
    alice, bob, recorder = parts
    alice.call("999")
    assert alice.statuses()[-1] == 404
    # Routing rejected it: the call started (it is logged) and failed, never offered to anyone.
    assert bob.requests() == [] and recorder.kinds() == ["CallFailed"] and recorder.events[0].status == 404
    assert [type(event).__name__ for event in recorder.setup] == ["CallStarted"]


def test_options_to_gateway_is_200(parts) -> None:
    alice, _, _ = parts
    request = Request("OPTIONS", f"sip:{GW[0]}", [
        ("From", "<sip:alice@10.0.0.1>;tag=o1"), ("To", f"<sip:{GW[0]}>"),
        ("Call-ID", "opt-1"), ("CSeq", "1 OPTIONS"),
    ])
    alice.node.endpoint.send_request(request, ("udp", *GW), alice.network.now)
    alice.network.run()
    [response] = alice.responses("OPTIONS")
    assert response.status == 200 and "INVITE" in (response.get("Allow") or "")


def test_in_dialog_request_for_unknown_dialog_is_481(parts) -> None:
    alice, _, _ = parts
    request = Request("BYE", f"sip:{GW[0]}", [
        ("From", "<sip:alice@10.0.0.1>;tag=x1"), ("To", f"<sip:{GW[0]}>;tag=nope"),
        ("Call-ID", "gone-1"), ("CSeq", "2 BYE"),
    ])
    alice.node.endpoint.send_request(request, ("udp", *GW), alice.network.now)
    alice.network.run()
    assert alice.statuses("BYE") == [481]


def test_untrusted_source_is_challenged_with_407(net: Network) -> None:
    make_gateway(net, ROUTES, trusted=lambda host, port: False)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    final = alice.responses()[-1]
    assert final.status == 407 and (final.get("Proxy-Authenticate") or "").startswith("Digest")
    assert bob.requests() == []


def test_untrusted_source_with_good_credentials_is_routed(net: Network) -> None:
    make_gateway(net, ROUTES, trusted=lambda host, port: False)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    challenge = alice.responses()[-1].get("Proxy-Authenticate") or ""
    credentials = build_authorization(challenge, method="INVITE", uri=f"sip:2000@{GW[0]}:{GW[1]}",
                                      username="1001", password=USERS["1001"], cnonce="abc")
    alice.call("2000", extra=[("Proxy-Authorization", credentials)])
    assert len(bob.requests("INVITE")) == 1


def test_untrusted_source_with_a_wrong_password_is_challenged_again(net: Network) -> None:
    make_gateway(net, ROUTES, trusted=lambda host, port: False)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    challenge = alice.responses()[-1].get("Proxy-Authenticate") or ""
    credentials = build_authorization(challenge, method="INVITE", uri=f"sip:2000@{GW[0]}:{GW[1]}",
                                      username="1001", password="guess", cnonce="abc")
    alice.call("2000", extra=[("Proxy-Authorization", credentials)])
    assert alice.statuses()[-1] == 407 and bob.requests() == []


def test_hunting_tries_the_next_target_after_a_retryable_failure(net: Network) -> None:
    b2bua, recorder = make_gateway(net, [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")])
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    desk = Phone(net, "10.0.0.2", 5062, "desk")
    mobile = Phone(net, "10.0.0.3", 5063, "mobile")
    bind(b2bua, "1001", "sip:1001@10.0.0.3:5063", net.now - 1)
    bind(b2bua, "1001", "sip:1001@10.0.0.2:5062", net.now)
    alice.call("1001")
    assert desk.requests("INVITE")[0].request.uri == "sip:1001@10.0.0.2:5062"  # most recent first
    desk.answer(503)
    [invite] = mobile.requests("INVITE")
    assert invite.request.body == SDP_A
    mobile.answer(200, SDP_B)
    assert alice.statuses()[-1] == 200
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]


def test_busy_is_final_even_with_more_targets(net: Network) -> None:
    b2bua, _ = make_gateway(net, [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")])
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    desk = Phone(net, "10.0.0.2", 5062, "desk")
    mobile = Phone(net, "10.0.0.3", 5063, "mobile")
    for contact, at in (("sip:1001@10.0.0.3:5063", net.now - 1), ("sip:1001@10.0.0.2:5062", net.now)):
        bind(b2bua, "1001", contact, at)
    alice.call("1001")
    desk.answer(486)
    assert alice.statuses()[-1] == 486 and mobile.requests() == []


def test_reinvite_from_callee_is_passed_to_caller(parts) -> None:
    alice, bob, _ = parts
    _connect(alice, bob)
    assert bob.dialog is not None
    hold = SDP_B.replace(b"m=audio", b"a=sendonly\r\nm=audio")
    reinvite = bob.dialog.create_request("INVITE", hold, [("Content-Type", "application/sdp")])
    bob.node.endpoint.send_request(reinvite, ("udp", *GW), bob.network.now)
    bob.network.run()
    [relayed] = alice.requests("INVITE")
    assert relayed.request.body == hold and relayed.request.call_id == alice.invite.call_id  # type: ignore[union-attr]
    alice.answer(200, SDP_A)
    assert bob.statuses()[-1] == 200 and bob.responses()[-1].body == SDP_A


def test_lost_ack_to_callee_is_resent_on_2xx_retransmission(net: Network, parts) -> None:
    alice, bob, _ = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    net.drop = lambda data, target: data.startswith(b"ACK") and target[1] == "10.0.0.2"
    alice.ack()
    assert bob.requests("ACK") == []
    net.drop = lambda data, target: False
    net.advance(1.0)  # bob's endpoint retransmits its 200 (T1), the gateway answers with the same ACK
    assert len(bob.requests("ACK")) == 1


def test_bye_before_ack_still_acks_and_byes_the_callee(parts) -> None:
    alice, bob, recorder = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    alice.send_in_dialog("BYE")
    assert alice.statuses("BYE") == [200]
    assert len(bob.requests("ACK")) == 1 and len(bob.requests("BYE")) == 1
    assert recorder.events[-1].ended_by == "caller"


def test_max_forwards_zero_is_483(parts) -> None:
    alice, bob, _ = parts
    alice.call("2000", extra=[("Max-Forwards", "0")])
    assert alice.statuses()[-1] == 483 and bob.requests() == []


def test_unknown_method_outside_a_dialog_is_405_with_allow(parts) -> None:
    alice, _, _ = parts
    request = Request("SUBSCRIBE", f"sip:2000@{GW[0]}", [
        ("From", "<sip:alice@10.0.0.1>;tag=s1"), ("To", f"<sip:2000@{GW[0]}>"),
        ("Call-ID", "sub-1"), ("CSeq", "1 SUBSCRIBE"), ("Event", "presence"),
    ])
    alice.node.endpoint.send_request(request, ("udp", *GW), alice.network.now)
    alice.network.run()
    [response] = alice.responses("SUBSCRIBE")
    assert response.status == 405 and "INVITE" in (response.get("Allow") or "")


def test_finished_calls_leave_no_state_behind(net: Network) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    _connect(alice, bob)
    alice.send_in_dialog("BYE")
    alice.dialog = bob.dialog = None
    bob.node.events.clear()
    alice.call("2000")
    bob.answer(486)
    bob.node.events.clear()
    alice.call("2000")
    bob.answer(180)
    alice.cancel()
    [cancel] = [e for e in bob.node.events if isinstance(e, CancelReceived)]
    bob.node.endpoint.send_response(cancel.invite_transaction, make_response(
        cancel.invite_transaction.request, 487, to_tag="b487"), net.now)
    net.run()
    net.advance(40)
    assert recorder.kinds().count("CallOffered") == 3
    assert (b2bua.calls, b2bua._dialogs, b2bua._transactions, b2bua._invites) == (set(), {}, {}, {})
