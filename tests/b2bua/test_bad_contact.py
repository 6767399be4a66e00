"""A Contact the gateway cannot use as a remote target (missing, malformed, `*`, no host) never leaves a
call stuck: the 2xx of leg B's INVITE is ACKed and its dialog BYEd (§13.2.2.4) and the caller hears
502; a target refresh keeps the old target. Real sans-IO endpoints in memory, a hand-moved clock."""

from __future__ import annotations

import re

import pytest

from gateway.b2bua.controller import B2bua
from gateway.config import StaticRoute
from gateway.sip.message import Response, make_response
from tests.b2bua.harness import SDP_A, SDP_B, Network, Phone, bind, make_gateway, no_state_left

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]
PHONES = [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")]
SDP_A2 = SDP_A.replace(b"4000", b"4002")
# None: no Contact at all (a 2xx to an INVITE MUST carry one, §13.3.1.4).
UNUSABLE = [None, "<sip:bob@10.0.0.2:5062", "sip:bob@10.0.0.2 junk", "*", "<tel:+15551234>", "<mailto:bob@x>"]
TIMER_90 = [("Supported", "timer"), ("Session-Expires", "90;refresher=uac")]


@pytest.fixture
def net() -> Network:
    return Network()


def _answer_with_contact(net: Network, phone: Phone, status: int, contact: str | None, method: str = "INVITE",
                         extra: list[tuple[str, str]] | None = None) -> Response:
    """`phone` answers its last `method` request with `contact` as its Contact, verbatim."""
    event = phone.requests(method)[-1]
    response = make_response(event.request, status, to_tag="b-odd")
    response.headers += extra or []
    if contact is not None:
        response.headers.append(("Contact", contact))
    response.headers.append(("Content-Type", "application/sdp"))
    response.body = SDP_B
    phone.node.endpoint.send_response(event.transaction, response, net.now)  # type: ignore[arg-type]
    net.run()
    return response


@pytest.mark.parametrize("contact", UNUSABLE)
def test_2xx_with_an_unusable_contact_is_acked_and_byed_and_the_caller_hears_502(net: Network, contact) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice, bob = Phone(net, "10.0.0.1", 5061, "alice"), Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    _answer_with_contact(net, bob, 200, contact)
    # §13.2.2.4: the 2xx is ACKed all the same; the dialog has no target to use, so it is ended at once,
    # both sent where the INVITE went.
    [ack] = bob.requests("ACK")
    [bye] = bob.requests("BYE")
    assert ack.request.cseq[0] == bob.requests("INVITE")[0].request.cseq[0]
    assert ack.request.to_tag == bye.request.to_tag == "b-odd"
    assert alice.finals() == [502]
    assert recorder.kinds() == ["CallOffered", "CallFailed"]
    assert recorder.events[-1].status == 502  # type: ignore[attr-defined]
    bob.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)


def test_2xx_with_an_unusable_contact_does_not_hunt_on(net: Network) -> None:
    """The target answered: the hunt is over, another phone must not ring for a call someone took."""
    b2bua, _ = make_gateway(net, PHONES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    desk, mobile = Phone(net, "10.0.0.2", 5062, "desk"), Phone(net, "10.0.0.3", 5063, "mobile")
    bind(b2bua, "1001", "sip:1001@10.0.0.3:5063", net.now - 1)
    bind(b2bua, "1001", "sip:1001@10.0.0.2:5062", net.now)
    alice.call("1001")
    _answer_with_contact(net, desk, 200, "<sip:desk@")
    assert alice.finals() == [502] and mobile.requests() == []
    assert len(desk.requests("ACK")) == len(desk.requests("BYE")) == 1
    desk.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)


def test_provisional_with_an_unusable_contact_still_rings_the_caller(net: Network) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice, bob = Phone(net, "10.0.0.1", 5061, "alice"), Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    _answer_with_contact(net, bob, 183, "<sip:bob@10.0.0.2:5062")
    assert [r.status for r in alice.responses() if r.status > 100] == [183]
    _answer_with_contact(net, bob, 200, "<sip:bob@10.0.0.2:5062>")
    assert alice.finals() == [200] and recorder.kinds() == ["CallOffered", "CallAnswered"]
    alice.ack()
    assert len(bob.requests("ACK")) == 1


def _timed_call(net: Network) -> tuple[B2bua, Phone, Phone]:
    """A confirmed call alice → bob that agreed on a 90 s session refreshed by the caller."""
    b2bua, _ = make_gateway(net, ROUTES)
    alice, bob = Phone(net, "10.0.0.1", 5061, "alice"), Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000", extra=TIMER_90)
    bob.answer(200, SDP_B, method="INVITE", extra=[("Require", "timer"), ("Session-Expires", "90;refresher=uac")])
    alice.ack()
    assert alice.finals() == [200] and len(bob.requests("ACK")) == 1
    return b2bua, alice, bob


@pytest.mark.parametrize("contact", UNUSABLE)
def test_reinvite_2xx_with_an_unusable_contact_keeps_the_target_acks_and_rearms_the_session_timer(
    net: Network, contact
) -> None:
    b2bua, alice, bob = _timed_call(net)
    net.advance(45)
    alice.send_in_dialog("INVITE", SDP_A2, [("Supported", "timer"), ("Session-Expires", "120;refresher=uac")])
    _answer_with_contact(net, bob, 200, contact,
                         extra=[("Require", "timer"), ("Session-Expires", "120;refresher=uac")])
    assert alice.finals()[-1] == 200
    alice.ack()
    assert len(bob.requests("ACK")) == 2  # the re-INVITE's ACK crossed too
    # RFC 4028 §10: the refresh succeeded, so the watch runs 120 - 32 = 88 s from it, not 60 s from the start.
    net.advance(88 - 0.5)
    assert bob.requests("BYE") == [] and alice.requests("BYE") == []
    net.advance(0.5)
    assert len(bob.requests("BYE")) == 1 and len(alice.requests("BYE")) == 1  # bob's old target still works
    bob.answer(200, method="BYE")
    alice.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)


@pytest.mark.parametrize("contact", ["<sip:alice@10.0.0.1:5061", "*", "<tel:+15551234>"])
def test_reinvite_with_an_unusable_contact_is_400_and_changes_nothing(net: Network, contact: str) -> None:
    b2bua, alice, bob = _timed_call(net)
    [call] = b2bua.calls
    leg_a = call.legs[0]
    before = (leg_a.remote_target, leg_a.remote_cseq)
    assert alice.dialog is not None
    request = alice.dialog.create_request("INVITE", SDP_A2, [("Content-Type", "application/sdp")])
    request.headers = [(k, v) for k, v in request.headers if k != "Contact"] + [("Contact", contact)]
    alice.send(request)
    assert alice.finals()[-1] == 400
    assert [e for e in bob.requests("INVITE") if e.request.to_tag is not None] == []  # not relayed
    # §8.2 checks precede the dialog's (§12.2.2): a request rejected as malformed leaves the dialog as it was.
    assert (leg_a.remote_target, leg_a.remote_cseq) == before
    bob.send_in_dialog("BYE")
    assert len(alice.requests("BYE")) == 1


def test_caller_invite_whose_contact_has_no_host_is_400_and_rings_nobody(net: Network) -> None:
    """§8.1.1.8: the caller's Contact is where the gateway's BYE would go; a tel: URI has no host."""
    b2bua, _ = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice", contact="tel:+15551234")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    assert alice.statuses("INVITE")[-1] == 400
    assert bob.requests("INVITE") == []
    assert no_state_left(b2bua)
