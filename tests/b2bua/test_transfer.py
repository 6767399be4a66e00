"""Transfers (SPEC R5) through the B2BUA, sans-IO: REFER answered by the gateway itself (202 and the
NOTIFYs of its implicit subscription), the new leg rung through a hunt, the SDP shuffle, the
transferor released; the recall of a blind transfer nobody takes; attended transfer with Replaces;
REFER refused from a phone that may not transfer. Real sans-IO endpoints in memory, a hand-moved clock.
"""

from __future__ import annotations

import urllib.parse

import pytest

from gateway.b2bua.call_context import Party
from gateway.b2bua.events import CallEnded, CallTransferred
from gateway.routing.decision import RouteDecision
from gateway.routing.request import Deliver, RouteRequest
from gateway.routing.targets import RingStep, Target
from gateway.sip.auth import build_authorization
from gateway.sip.events import CancelReceived
from gateway.sip.message import Request, Response, make_response
from tests.b2bua.harness import GW, SDP_A, SDP_B, USERS, Network, Phone, bind, make_gateway, no_state_left

SDP_C = SDP_B.replace(b"bob 2 2", b"carol 3 3").replace(b"10.0.0.2", b"10.0.0.3").replace(b"5000", b"6000")
SDP_A2 = SDP_A.replace(b"alice 1 1", b"alice 1 2")
RING = 20.0


class ExtensionRouter:
    """Rings employee `int(ext)` on extension `ext` for any 2xxx dialled; an authenticated phone is its
    own employee (the caller's side may transfer too)."""

    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        user = request.request_user or ""
        caller = int(request.authenticated_user) if request.authenticated_user else None
        step = RingStep((Target.employee(int(user), user),), None, ("R1.extension",))
        deliver(RouteDecision((step,), None, ("R1.extension",), caller_employee_id=caller), request.at)


def extension_of_employee(user: str, transferor: int | None) -> Target | None:
    return Target.employee(int(user), user) if user.isdigit() and user.startswith("2") else None


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def gw(net: Network):
    b2bua, recorder = make_gateway(net, [], router=ExtensionRouter())
    b2bua.transfer_target = extension_of_employee
    b2bua.transfer_ring_time = RING
    caller = Phone(net, "10.0.0.1", 5061, "alice")
    bob, carol, dave = (Phone(net, f"10.0.0.{n}", 5060 + n, f"200{n - 1}") for n in (2, 3, 4))
    for phone in (bob, carol, dave):
        bind(b2bua, phone.user, phone.contact, net.now)
    return b2bua, recorder, caller, bob, carol, dave


def connect(caller: Phone, callee: Phone, dialled: str, sdp: bytes = SDP_B) -> None:
    caller.call(dialled)
    callee.answer(200, sdp, method="INVITE", index=-1)
    caller.ack()


def refer(transferor: Phone, refer_to: str) -> int:
    transferor.send_in_dialog("REFER", extra=[("Refer-To", f"<{refer_to}>"), ("Referred-By", "<sip:x@h>")])
    return transferor.statuses("REFER")[-1]


def notifies(phone: Phone) -> list[tuple[str, str]]:
    """The sipfrag status lines and Subscription-State of the NOTIFYs the phone got, each answered 200 once."""
    found, answered = [], phone.__dict__.setdefault("notifies_answered", set())
    for index, event in enumerate(phone.requests()):
        request = event.request
        if request.method != "NOTIFY":
            continue
        assert (request.get("Event") or "").startswith("refer")
        assert (request.get("Content-Type") or "").startswith("message/sipfrag")
        found.append((request.body.decode().strip(), (request.get("Subscription-State") or "").split(";")[0]))
        if index not in answered:
            answered.add(index)
            phone.answer(200, index=index)
    return found


def in_dialog_invites(phone: Phone) -> list[Request]:
    return [e.request for e in phone.requests("INVITE") if e.request.to_tag is not None]


def test_r5_blind_transfer_to_an_extension_joins_the_caller_to_the_colleague(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    assert refer(bob, "sip:2002@127.0.0.1") == 202
    # Never relayed: the caller sees no REFER; the target rings with the caller's SDP.
    assert alice.requests("REFER") == []
    [invite] = [e.request for e in carol.requests("INVITE")]
    assert invite.body == SDP_A and "alice" in (invite.get("From") or "")
    carol.answer(180)
    carol.answer(200, SDP_C, method="INVITE")
    assert len(carol.requests("ACK")) == 1
    assert notifies(bob) == [("SIP/2.0 100 Trying", "active"), ("SIP/2.0 180 Ringing", "active"),
                     ("SIP/2.0 200 OK", "terminated")]
    # The transferor is released, the caller re-INVITEd with the colleague's answer.
    assert len(bob.requests("BYE")) == 1
    bob.answer(200, method="BYE")
    [reinvite] = in_dialog_invites(alice)
    assert reinvite.body == SDP_C
    alice.answer(200, SDP_A2, method="INVITE")
    assert any(e.request.cseq[0] == reinvite.cseq[0] for e in alice.requests("ACK"))
    [moved] = [e for e in recorder.events if isinstance(e, CallTransferred)]
    assert (moved.from_employee_id, moved.to_employee_id, moved.kind) == (2001, 2002, "blind")
    assert moved.call_id == alice.invite.call_id  # type: ignore[union-attr]
    assert b2bua.busy_employees() == frozenset({2002})
    # The call goes on between the caller and the colleague: the caller's BYE reaches the colleague.
    alice.send_in_dialog("BYE")
    assert alice.statuses("BYE") == [200]
    assert len(carol.requests("BYE")) == 1
    carol.answer(200, method="BYE")
    [ended] = [e for e in recorder.events if isinstance(e, CallEnded)]
    assert ended.ended_by == "caller"
    net.advance(40)
    assert no_state_left(b2bua) and b2bua.busy_employees() == frozenset()


def test_r5_refer_from_the_outside_caller_is_refused_403_and_nothing_changes(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    assert refer(alice, "sip:2002@127.0.0.1") == 403  # the caller's leg is no employee's phone
    assert carol.requests("INVITE") == [] and bob.requests("REFER") == []
    assert not [e for e in recorder.events if isinstance(e, CallTransferred)]


def test_r5_refer_from_a_phone_in_no_call_is_refused_481(net: Network, gw) -> None:
    b2bua, _, alice, bob, carol, dave = gw
    connect(alice, bob, "2001")
    # Dave copies the call's Call-ID but has no dialog with the gateway: no such dialog (§12.2.2).
    forged = Request("REFER", f"sip:gw@{GW[0]}", [
        ("From", "<sip:2003@10.0.0.4>;tag=forged"), ("To", f"<sip:gw@{GW[0]}>;tag=not-ours"),
        ("Call-ID", alice.invite.call_id), ("CSeq", "7 REFER"),  # type: ignore[union-attr]
        ("Contact", f"<{dave.contact}>"), ("Refer-To", "<sip:2003@127.0.0.1>"),
    ])
    dave.send(forged)
    outside = Request("REFER", f"sip:gw@{GW[0]}", [
        ("From", "<sip:2003@10.0.0.4>;tag=o2"), ("To", f"<sip:gw@{GW[0]}>"), ("Call-ID", "refer-ood"),
        ("CSeq", "1 REFER"), ("Contact", f"<{dave.contact}>"), ("Refer-To", "<sip:2003@127.0.0.1>"),
    ])
    dave.send(outside)
    assert dave.finals("REFER") == [481, 481]
    assert dave.requests("INVITE") == [] and carol.requests("INVITE") == []


def test_r5_a_refer_without_a_usable_refer_to_is_400_saying_so(net: Network, gw) -> None:
    _, _, alice, bob, _, _ = gw
    connect(alice, bob, "2001")
    bob.send_in_dialog("REFER")
    [answer] = bob.responses("REFER")
    assert answer.status == 400 and "Refer-To" in answer.reason


def test_r5_blind_transfer_nobody_answers_while_the_transferor_waits_keeps_the_call(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    assert refer(bob, "sip:2002@127.0.0.1") == 202
    carol.answer(180)
    net.advance(RING + 1)  # the ring time passes: the gateway cancels carol
    [cancel] = carol.cancels()
    carol.node.endpoint.send_response(cancel.invite_transaction, _487(cancel), net.now)
    net.run()
    assert notifies(bob)[-1] == ("SIP/2.0 408 Request Timeout", "terminated")
    assert bob.requests("BYE") == [] and in_dialog_invites(alice) == []
    # Still bridged: the caller's BYE reaches the transferor.
    alice.send_in_dialog("BYE")
    assert len(bob.requests("BYE")) == 1
    bob.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)


def test_r5_blind_transfer_nobody_answers_rings_the_transferor_again_then_ends(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    assert refer(bob, "sip:2002@127.0.0.1") == 202
    bob.send_in_dialog("BYE")  # the transferor hangs up at once, as phones do after a blind transfer
    assert bob.statuses("BYE") == [200] and alice.requests("BYE") == []
    net.advance(RING + 1)
    for cancel in carol.cancels():
        carol.node.endpoint.send_response(cancel.invite_transaction, _487(cancel), net.now)
    net.run()
    # R5: the transferring employee is rung again, marked as a transfer's recall (RFC 7462).
    recalls = [e.request for e in bob.requests("INVITE") if e.request.to_tag is None and e.request.call_id != bob.dialog.call_id]  # type: ignore[union-attr]
    [recall] = recalls
    assert recall.get("Alert-Info") == "<urn:alert:service:recall:transfer>" and recall.body == SDP_A
    net.advance(RING + 1)  # nobody takes the recall either: the call ends
    for cancel in bob.cancels():
        bob.node.endpoint.send_response(cancel.invite_transaction, _487(cancel), net.now)
    net.run()
    assert len(alice.requests("BYE")) == 1
    alice.answer(200, method="BYE")
    [ended] = [e for e in recorder.events if isinstance(e, CallEnded)]
    assert ended.reason == "transfer-unanswered"
    net.advance(40)
    assert no_state_left(b2bua) and b2bua.busy_employees() == frozenset()


def test_r5_blind_transfer_recall_answered_brings_the_caller_back(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    first_dialog = bob.dialog
    refer(bob, "sip:2002@127.0.0.1")
    bob.send_in_dialog("BYE")
    carol.answer(486)  # busy: the transfer fails at once
    [recall] = [e for e in bob.requests("INVITE") if e.request.call_id != first_dialog.call_id]  # type: ignore[union-attr]
    bob.dialog = None
    bob.answer(200, SDP_B, index=bob.requests().index(recall), method=None)
    [reinvite] = in_dialog_invites(alice)
    assert reinvite.body == SDP_B
    alice.answer(200, SDP_A2, method="INVITE")
    kinds = [(e.kind, e.to_employee_id) for e in recorder.events if isinstance(e, CallTransferred)]
    assert kinds == [("recall", 2001)]
    alice.send_in_dialog("BYE")
    assert any(e.request.call_id == recall.request.call_id for e in bob.requests("BYE"))


def _487(cancel: CancelReceived) -> Response:
    return make_response(cancel.invite_transaction.request, 487, to_tag="x")


def test_r5_attended_transfer_with_replaces_joins_the_caller_to_the_consulted_colleague(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    first = bob.dialog
    # Bob consults Carol on a second call through the gateway (as a phone of the PBX: authenticated).
    consult = Phone(net, "10.0.0.2", 5072, "2001")
    consult.call("2002", extra=[])
    # The harness gateway trusts every source: its caller is no authenticated phone, so say who it is.
    [consultation] = [c for c in b2bua.calls if c.invite.call_id == consult.invite.call_id]  # type: ignore[union-attr]
    consultation.parties[0] = consultation.parties[0] or _party(2001, "2001")
    carol.answer(200, SDP_C, method="INVITE")
    consult.ack()
    leg_a = consult.dialog
    assert leg_a is not None
    bob.dialog = first
    replaces = urllib.parse.quote(f"{leg_a.call_id};to-tag={leg_a.remote_tag};from-tag={leg_a.local_tag}", safe="")
    assert refer(bob, f"sip:2002@127.0.0.1?Replaces={replaces}") == 202
    # The colleague is offered the caller's SDP on the consultation dialog; then the caller gets hers.
    [to_carol] = in_dialog_invites(carol)
    assert to_carol.body == SDP_A and to_carol.call_id == carol.dialog.call_id  # type: ignore[union-attr]
    carol.answer(200, SDP_C, method="INVITE")
    [to_alice] = in_dialog_invites(alice)
    assert to_alice.body == SDP_C
    alice.answer(200, SDP_A2, method="INVITE")
    assert notifies(bob)[-1] == ("SIP/2.0 200 OK", "terminated")
    # Both of the transferor's legs are released; the consultation call is part of the first one.
    assert len(bob.requests("BYE")) == 1 and len(consult.requests("BYE")) == 1
    [moved] = [e for e in recorder.events if isinstance(e, CallTransferred)]
    assert (moved.kind, moved.from_employee_id, moved.to_employee_id) == ("attended", 2001, 2002)
    assert moved.consultation_call_id == consult.invite.call_id  # type: ignore[union-attr]
    assert consultation not in b2bua.calls
    alice.send_in_dialog("BYE")
    assert len(carol.requests("BYE")) == 1
    carol.answer(200, method="BYE")
    bob.answer(200, method="BYE")
    consult.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua) and b2bua.busy_employees() == frozenset()


def test_r5_attended_transfer_naming_no_dialog_of_the_gateway_fails_481_and_keeps_the_call(net: Network, gw) -> None:
    _, _, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    assert refer(bob, "sip:2002@127.0.0.1?Replaces=nope%3Bto-tag%3Da%3Bfrom-tag%3Db") == 202
    assert notifies(bob)[-1] == ("SIP/2.0 481 Call/Transaction Does Not Exist", "terminated")
    assert carol.requests() == [] and bob.requests("BYE") == []


def _party(employee_id: int, extension: str) -> Party:
    return Party(employee_id, extension)


def test_r5_a_second_refer_while_a_transfer_goes_on_is_491(net: Network, gw) -> None:
    _, _, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    assert refer(bob, "sip:2002@127.0.0.1") == 202
    assert refer(bob, "sip:2003@127.0.0.1") == 491
    assert len(carol.requests("INVITE")) == 1


def test_r5_the_caller_hanging_up_while_the_target_rings_ends_everything(net: Network, gw) -> None:
    b2bua, recorder, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    refer(bob, "sip:2002@127.0.0.1")
    carol.answer(180)
    alice.send_in_dialog("BYE")
    assert alice.statuses("BYE") == [200]
    assert len(carol.cancels()) == 1 and len(bob.requests("BYE")) == 1
    bob.answer(200, method="BYE")
    carol.node.endpoint.send_response(carol.cancels()[0].invite_transaction, _487(carol.cancels()[0]), net.now)
    net.run()
    [ended] = [e for e in recorder.events if isinstance(e, CallEnded)]
    assert ended.ended_by == "caller" and not [e for e in recorder.events if isinstance(e, CallTransferred)]
    net.advance(40)
    assert no_state_left(b2bua) and b2bua.busy_employees() == frozenset()


def test_r5_a_blind_transfer_to_no_such_extension_notifies_404_and_keeps_the_call(net: Network, gw) -> None:
    _, _, alice, bob, _, _ = gw
    connect(alice, bob, "2001")
    assert refer(bob, "sip:9999@127.0.0.1") == 202
    assert notifies(bob) == [("SIP/2.0 100 Trying", "active"), ("SIP/2.0 404 Not Found", "terminated")]
    alice.send_in_dialog("BYE")
    assert len(bob.requests("BYE")) == 1


def test_r5_the_employee_who_placed_the_call_may_transfer_it_too(net: Network) -> None:
    """The transferor on leg A (an authenticated phone of the PBX): its called party is moved onto the target."""
    b2bua, recorder = make_gateway(net, [], router=ExtensionRouter(), trusted=lambda host, port: False)
    b2bua.transfer_target = extension_of_employee
    employee = Phone(net, "10.0.0.1", 5061, "1001")
    bob, carol = Phone(net, "10.0.0.2", 5062, "2001"), Phone(net, "10.0.0.3", 5063, "2002")
    for phone in (bob, carol):
        bind(b2bua, phone.user, phone.contact, net.now)
    employee.call("2001")
    challenge = employee.responses()[-1].get("Proxy-Authenticate") or ""
    authorization = build_authorization(challenge, method="INVITE", uri=f"sip:2001@{GW[0]}:{GW[1]}",
                                        username="1001", password=USERS["1001"], cnonce="c0ffee")
    employee.call("2001", extra=[("Proxy-Authorization", authorization)])
    bob.answer(200, SDP_B, method="INVITE")
    employee.ack()
    assert refer(employee, "sip:2002@127.0.0.1") == 202
    [invite] = carol.requests("INVITE")
    assert invite.request.body == SDP_B  # the remaining party is bob now: his SDP is offered
    carol.answer(200, SDP_C, method="INVITE")
    [reinvite] = in_dialog_invites(bob)
    assert reinvite.body == SDP_C
    bob.answer(200, SDP_B, method="INVITE")
    assert len(employee.requests("BYE")) == 1
    [moved] = [e for e in recorder.events if isinstance(e, CallTransferred)]
    assert (moved.from_employee_id, moved.to_employee_id) == (1001, 2002)
    bob.send_in_dialog("BYE")  # bob hangs up: the BYE reaches carol, now on the employee's side of the call
    assert len(carol.requests("BYE")) == 1


def test_r5_the_callers_491_to_the_transfers_reinvite_is_tried_again(net: Network, gw) -> None:
    _, _, alice, bob, carol, _ = gw
    connect(alice, bob, "2001")
    refer(bob, "sip:2002@127.0.0.1")
    carol.answer(200, SDP_C, method="INVITE")
    alice.answer(491, method="INVITE")  # its own re-INVITE crossed ours (§14.1)
    assert len(in_dialog_invites(alice)) == 1
    net.advance(4.5)
    first, again = in_dialog_invites(alice)
    assert again.body == SDP_C and again.cseq[0] > first.cseq[0]
    alice.answer(200, SDP_A2, method="INVITE")
    assert any(e.request.cseq[0] == again.cseq[0] for e in alice.requests("ACK"))
