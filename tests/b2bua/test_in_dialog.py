"""Requests inside a call's dialogs: re-INVITE, UPDATE, INFO and friends crossing the B2BUA, their
failures, glare and the §12.2.2 checks, with the real sans-IO endpoints in memory (no sockets, a
hand-moved clock)."""

from __future__ import annotations

import re

import pytest

from gateway.config import StaticRoute
from gateway.sip.message import Request, make_response
from gateway.sip.transaction_base import CONFIRMED
from tests.b2bua.harness import GW, SDP_A, SDP_B, Network, Phone, bind, make_gateway, no_state_left

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]
SDP_A2 = SDP_A.replace(b"4000", b"4002")
SDP_B2 = SDP_B.replace(b"5000", b"5002")
DTMF = b"Signal=5\r\nDuration=160\r\n"


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def call(net: Network) -> tuple[object, object, Phone, Phone]:
    """A confirmed call alice → gateway → bob."""
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(180, SDP_B)
    bob.answer(200, SDP_B, method="INVITE")
    alice.ack()
    assert len(bob.requests("ACK")) == 1
    return b2bua, recorder, alice, bob


def _sides(call: tuple[object, object, Phone, Phone], side: str) -> tuple[Phone, Phone]:
    """(the phone sending the request, the phone it is relayed to)."""
    _, _, alice, bob = call
    return (alice, bob) if side == "caller" else (bob, alice)


def _hang_up(net: Network, b2bua: object, alice: Phone, bob: Phone) -> None:
    alice.send_in_dialog("BYE")
    assert alice.statuses("BYE") == [200]
    bob.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


# -- re-INVITE ---------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["caller", "callee"])
def test_reinvite_answer_and_its_ack_cross_end_to_end(call, side: str) -> None:
    sender, receiver = _sides(call, side)
    sender.send_in_dialog("INVITE", SDP_A2)
    [relayed] = [e.request for e in receiver.requests("INVITE") if e.request.to_tag is not None]
    assert relayed.body == SDP_A2 and relayed.call_id == receiver.dialog.call_id  # type: ignore[union-attr]
    acks_before = len(receiver.requests("ACK"))
    receiver.answer(200, SDP_B2, method="INVITE")
    [*_, ok] = sender.responses()
    assert ok.status == 200 and ok.body == SDP_B2 and ok.cseq[0] == sender.dialog.local_cseq  # type: ignore[union-attr]
    # §13.2.2.4 / §14: the ACK of a 2xx is end to end; it leaves the gateway only when the sender ACKs.
    assert len(receiver.requests("ACK")) == acks_before
    sender.ack()
    [*_, ack] = receiver.requests("ACK")
    assert ack.request.cseq == (relayed.cseq[0], "ACK") and ack.request.call_id == relayed.call_id
    assert ack.request.to_tag == relayed.to_tag


def test_late_offer_reinvite_carries_the_answer_in_the_relayed_ack(call) -> None:
    _, _, alice, bob = call
    bob.send_in_dialog("INVITE")  # no SDP: alice makes the offer in her 200, bob answers in his ACK
    [relayed] = alice.requests("INVITE")
    assert relayed.request.body == b""
    alice.answer(200, SDP_A2, method="INVITE")
    assert bob.responses()[-1].body == SDP_A2
    bob.ack(body=SDP_B2)
    [ack] = alice.requests("ACK")
    assert ack.request.body == SDP_B2 and ack.request.get("Content-Type") == "application/sdp"
    assert ack.request.cseq == (relayed.request.cseq[0], "ACK")


@pytest.mark.parametrize("side", ["caller", "callee"])
@pytest.mark.parametrize("status", [491, 488, 500])
def test_reinvite_failure_is_relayed_and_the_call_survives(net: Network, call, side: str, status: int) -> None:
    b2bua, _, alice, bob = call
    sender, receiver = _sides(call, side)
    sender.send_in_dialog("INVITE", SDP_A2)
    receiver.answer(status, method="INVITE")
    assert sender.finals()[-1] == status
    # §17.1.1.3: the ACK of a non-2xx is hop by hop; the gateway's own transaction sent it.
    assert receiver.requests("INVITE")[-1].transaction.state is CONFIRMED
    # The session is unchanged: a later re-INVITE still works, and so does the hang-up.
    sender.send_in_dialog("INVITE", SDP_A2)
    receiver.answer(200, SDP_B2, method="INVITE")
    assert sender.finals()[-1] == 200
    sender.ack()
    _hang_up(net, b2bua, alice, bob)


def test_reinvite_2xx_with_a_new_contact_moves_the_next_requests(net: Network, call) -> None:
    b2bua, _, alice, bob = call
    moved = Phone(net, "10.0.0.2", 5072, "bob")
    alice.send_in_dialog("INVITE", SDP_A2)
    event = bob.requests("INVITE")[-1]
    ok = make_response(event.request, 200)
    ok.headers += [("Contact", f"<{moved.contact}>"), ("Content-Type", "application/sdp")]
    ok.body = SDP_B2
    bob.node.endpoint.send_response(event.transaction, ok, net.now)
    net.run()
    alice.ack()
    alice.send_in_dialog("BYE")
    # §12.2.1.2: the 2xx of a target refresh request replaces the remote target.
    assert len(moved.requests("BYE")) == 1 and bob.requests("BYE") == []


def test_reinvite_from_the_callee_with_a_new_contact_moves_the_next_requests(net: Network, call) -> None:
    _, _, alice, bob = call
    moved = Phone(net, "10.0.0.2", 5072, "bob")
    assert bob.dialog is not None
    reinvite = bob.dialog.create_request("INVITE", SDP_B2, [
        ("Contact", f"<{moved.contact}>"), ("Content-Type", "application/sdp")])
    bob.send(reinvite)
    alice.answer(200, SDP_A2, method="INVITE")
    bob.ack()
    alice.send_in_dialog("BYE")
    # §12.2.2: a target refresh request replaces the remote target of the dialog it arrives on.
    assert len(moved.requests("BYE")) == 1 and bob.requests("BYE") == []


def test_reinvite_glare_gets_491_for_the_one_crossing_ours(call) -> None:
    _, _, alice, bob = call
    alice.send_in_dialog("INVITE", SDP_A2)  # relayed to bob, not answered yet
    bob.send_in_dialog("INVITE", SDP_B2)
    # §14.2: the gateway has an INVITE in progress on bob's dialog: bob's crossing one gets 491.
    assert bob.finals() == [491]
    assert alice.requests("INVITE") == []
    bob.answer(200, SDP_B, method="INVITE", index=-1)
    assert alice.finals()[-1] == 200


def test_second_reinvite_while_the_first_is_pending_is_500_with_retry_after(call) -> None:
    _, _, alice, bob = call
    alice.send_in_dialog("INVITE", SDP_A2)
    alice.send_in_dialog("INVITE", SDP_A2)
    # §14.2: a second INVITE before the final answer to a lower CSeq one: 500 with Retry-After 0-10 s.
    [*_, refused] = alice.responses()
    assert refused.status == 500 and refused.cseq[0] == alice.dialog.local_cseq  # type: ignore[union-attr]
    assert 0 <= int(refused.get("Retry-After") or "-1") <= 10
    assert len([e for e in bob.requests("INVITE") if e.request.to_tag]) == 1


def test_reinvite_on_the_early_dialog_is_500_with_retry_after(net: Network) -> None:
    make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(180, SDP_B)
    from tests.helpers.sip_dialog import Dialog

    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    alice.send_in_dialog("INVITE", SDP_A2)
    # §14.2: the initial INVITE (lower CSeq) has no final answer yet.
    [*_, refused] = alice.responses()
    assert refused.status == 500 and refused.get("Retry-After") is not None
    assert len(bob.requests("INVITE")) == 1


# -- UPDATE ------------------------------------------------------------------------------------
def test_update_on_the_early_dialog_reaches_the_callee_and_back(net: Network) -> None:
    b2bua, recorder = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(183, SDP_B)
    from tests.helpers.sip_dialog import Dialog

    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    alice.send_in_dialog("UPDATE", SDP_A2)  # RFC 3311 §5.1: UPDATE is allowed on an early dialog
    [update] = bob.requests("UPDATE")
    invite = bob.requests("INVITE")[0].request
    assert update.request.body == SDP_A2 and update.request.call_id == invite.call_id
    assert update.request.to_tag == f"b{id(invite) % 100000}"  # bob's early dialog
    bob.answer(200, SDP_B2, method="UPDATE")
    assert alice.statuses("UPDATE") == [200] and alice.responses("UPDATE")[0].body == SDP_B2
    bob.answer(200, SDP_B2, method="INVITE")
    alice.ack()
    assert len(bob.requests("ACK")) == 1
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]
    _hang_up(net, b2bua, alice, bob)


def test_update_from_the_callee_on_the_early_dialog_reaches_the_caller(net: Network) -> None:
    make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(180, SDP_B)
    bob.early_dialog()
    bob.send_in_dialog("UPDATE", SDP_B2)
    [update] = alice.requests("UPDATE")
    assert update.request.body == SDP_B2 and update.request.call_id == alice.invite.call_id  # type: ignore[union-attr]
    assert update.request.to_tag == alice.invite.from_tag  # type: ignore[union-attr]
    alice.answer(200, SDP_A2, method="UPDATE")
    assert bob.statuses("UPDATE") == [200] and bob.responses("UPDATE")[0].body == SDP_A2


def test_update_before_the_callee_made_an_early_dialog_is_refused_not_lost(net: Network) -> None:
    b2bua, _ = make_gateway(net, [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")])
    from tests.helpers.sip_dialog import Dialog

    alice = Phone(net, "10.0.0.1", 5061, "alice")
    desk = Phone(net, "10.0.0.2", 5062, "desk")
    mobile = Phone(net, "10.0.0.3", 5063, "mobile")
    for contact, at in (("sip:1001@10.0.0.3:5063", net.now - 1), ("sip:1001@10.0.0.2:5062", net.now)):
        bind(b2bua, "1001", contact, at)
    alice.call("1001")
    desk.answer(180)
    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    desk.answer(480, method="INVITE")  # hunting: mobile is invited and has not answered anything yet
    assert len(mobile.requests("INVITE")) == 1
    alice.send_in_dialog("UPDATE", SDP_A2)
    # RFC 3311 §5.2: no early dialog to carry it yet; 491 tells alice to try again later.
    assert alice.finals("UPDATE") == [491]
    assert mobile.requests("UPDATE") == [] and desk.requests("UPDATE") == []


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_update_on_the_confirmed_dialog_is_relayed(call, side: str) -> None:
    sender, receiver = _sides(call, side)
    sender.send_in_dialog("UPDATE", SDP_A2)
    [update] = receiver.requests("UPDATE")
    assert update.request.body == SDP_A2 and update.request.get("Contact") is not None  # §RFC 3311 5.1
    receiver.answer(200, SDP_B2, method="UPDATE")
    assert sender.statuses("UPDATE") == [200] and sender.responses("UPDATE")[0].body == SDP_B2


# -- INFO, MESSAGE, OPTIONS and methods we do not relay ---------------------------------------
@pytest.mark.parametrize("side", ["caller", "callee"])
@pytest.mark.parametrize("status", [200, 415, 469])
def test_info_is_relayed_with_its_body_and_answer(call, side: str, status: int) -> None:
    sender, receiver = _sides(call, side)
    assert sender.dialog is not None
    info = sender.dialog.create_request("INFO", DTMF, [("Content-Type", "application/dtmf-relay")])
    sender.send(info)
    [relayed] = receiver.requests("INFO")
    assert relayed.request.body == DTMF and relayed.request.get("Content-Type") == "application/dtmf-relay"
    receiver.answer(status, method="INFO")
    assert sender.statuses("INFO") == [status]


@pytest.mark.parametrize("method", ["MESSAGE", "OPTIONS"])
def test_other_relayed_methods_cross(call, method: str) -> None:
    _, _, alice, bob = call
    alice.send_in_dialog(method)
    assert len(bob.requests(method)) == 1
    bob.answer(200, method=method)
    assert alice.statuses(method) == [200]


@pytest.mark.parametrize("method", ["NOTIFY", "SUBSCRIBE", "PUBLISH"])
def test_in_dialog_method_we_do_not_relay_is_405_with_allow(call, method: str) -> None:
    _, _, alice, bob = call
    alice.send_in_dialog(method)
    [response] = alice.responses(method)
    assert response.status == 405 and "UPDATE" in (response.get("Allow") or "")
    assert bob.requests(method) == []


def test_relayed_request_never_answered_leaves_the_call_up(net: Network, call) -> None:
    b2bua, _, alice, bob = call
    alice.send_in_dialog("INFO", DTMF)
    net.advance(40)  # bob never answers: Timer F on the gateway's INFO
    assert len(bob.requests("INFO")) == 1
    _hang_up(net, b2bua, alice, bob)


# -- §12.2.2: requests that do not belong to the dialog ----------------------------------------
def _forged(alice: Phone, method: str, **change: str) -> Request:
    """A request built from alice's dialog with one of its identifying fields changed."""
    assert alice.dialog is not None
    request = alice.dialog.create_request(method)
    for name, value in change.items():
        request.set(name.replace("_", "-"), value)
    return request


def test_wrong_to_tag_is_481(call) -> None:
    _, _, alice, bob = call
    request = _forged(alice, "BYE")
    request.set("To", re.sub(r"tag=[^;]+", "tag=forged", request.get("To") or ""))
    alice.send(request)
    assert alice.statuses("BYE") == [481] and bob.requests("BYE") == []


def test_wrong_from_tag_is_481(call) -> None:
    _, recorder, alice, bob = call
    request = _forged(alice, "BYE")
    request.set("From", re.sub(r"tag=[^;]+", "tag=forged", request.get("From") or ""))
    alice.send(request)
    # §12: the dialog is Call-ID *and* both tags; a stranger who saw Call-ID and To tag cannot hang up.
    assert alice.statuses("BYE") == [481] and bob.requests("BYE") == []
    assert recorder.kinds()[-1] == "CallAnswered"  # type: ignore[attr-defined]


def test_wrong_call_id_is_481(call) -> None:
    _, _, alice, bob = call
    alice.send(_forged(alice, "INFO", Call_ID="someone-else@10.0.0.1"))
    assert alice.statuses("INFO") == [481] and bob.requests("INFO") == []


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_lower_cseq_is_500_and_not_relayed(call, side: str) -> None:
    sender, receiver = _sides(call, side)
    sender.send_in_dialog("INFO")
    receiver.answer(200, method="INFO")
    assert sender.dialog is not None
    stale = sender.dialog.local_cseq - 1
    sender.send(_forged(sender, "BYE", CSeq=f"{stale} BYE"))
    # §12.2.2: a CSeq lower than the last one seen is out of order: 500, and the call stays up.
    assert sender.statuses("BYE") == [500]
    assert receiver.requests("BYE") == []


def test_ack_with_a_wrong_from_tag_is_not_relayed(net: Network) -> None:
    make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(200, SDP_B)
    from tests.helpers.sip_dialog import Dialog

    alice.dialog = Dialog.from_uac(alice.invite, alice.responses()[-1])  # type: ignore[arg-type]
    ack = alice.dialog.create_ack(1)
    ack.set("From", re.sub(r"tag=[^;]+", "tag=forged", ack.get("From") or ""))
    alice.node.endpoint.send_stateless(ack, ("udp", *GW))
    net.run()
    assert bob.requests("ACK") == []
    alice.ack()
    assert len(bob.requests("ACK")) == 1


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_reinvite_2xx_never_acked_ends_the_call_on_both_legs(net: Network, call, side: str) -> None:
    b2bua, recorder, _, _ = call
    sender, receiver = _sides(call, side)
    sender.send_in_dialog("INVITE", SDP_A2)
    receiver.answer(200, SDP_B2, method="INVITE")
    acks_before = len(receiver.requests("ACK"))
    net.advance(40)  # the sender never ACKs the relayed 2xx: §13.3.1.4 after 64*T1
    # The receiver's 2xx is still ACKed (or it retransmits for ever), then both legs get a BYE.
    assert len(receiver.requests("ACK")) == acks_before + 1
    assert len(sender.requests("BYE")) == 1 and len(receiver.requests("BYE")) == 1
    assert recorder.events[-1].ended_by == "gateway"  # type: ignore[attr-defined]
    for phone in (sender, receiver):
        phone.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


@pytest.mark.parametrize("side", ["caller", "callee"])
@pytest.mark.parametrize("answer", [487, 200])
def test_cancelled_reinvite_is_cancelled_on_the_other_leg(net: Network, call, side: str, answer: int) -> None:
    b2bua, _, alice, bob = call
    sender, receiver = _sides(call, side)
    before = len(sender.finals())
    sender.send_in_dialog("INVITE", SDP_A2)
    sender.node.endpoint.cancel(sender.last_txn, net.now)  # type: ignore[arg-type]
    net.run()
    assert sender.statuses("CANCEL") == [200]
    # §9.1: the CANCEL crosses; the re-INVITE's fate is the other side's answer, relayed.
    [cancel] = receiver.cancels()
    assert cancel.invite_transaction is receiver.requests("INVITE")[-1].transaction
    assert len(sender.finals()) == before  # no 487 of the gateway's own: the other side decides
    if answer == 487:
        receiver.node.endpoint.send_response(cancel.invite_transaction,
                                             make_response(cancel.invite_transaction.request, 487), net.now)
        net.run()
    else:
        receiver.answer(200, SDP_B2, method="INVITE")  # accepted before the CANCEL arrived
    assert sender.finals()[before:] == [answer]
    if answer == 200:
        sender.ack()
    _hang_up(net, b2bua, alice, bob)


# -- route sets (§12.1) -------------------------------------------------------------------------
def test_callers_record_route_is_echoed_and_used_for_the_gateways_bye(net: Network) -> None:
    b2bua, _ = make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    proxy = Phone(net, "10.0.0.9", 5082, "proxy")
    route = "<sip:10.0.0.9:5082;lr>"
    alice.call("2000", extra=[("Record-Route", route)])
    bob.answer(180)
    bob.answer(200, SDP_B, method="INVITE")
    # §12.1.1: the 18x and 2xx to alice copy her INVITE's Record-Route, so her route set has the proxy.
    assert [r.get_all("Record-Route") for r in alice.responses() if r.status > 100] == [[route], [route]]
    alice.ack()
    bob.send_in_dialog("BYE")
    [bye] = proxy.requests("BYE")
    assert bye.request.get("Route") == route and bye.request.uri == alice.contact
    assert alice.requests("BYE") == []


def test_callees_record_route_is_used_for_the_gateways_requests(net: Network) -> None:
    make_gateway(net, ROUTES)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    proxy = Phone(net, "10.0.0.8", 5082, "proxy")
    alice.call("2000")
    event = bob.requests("INVITE")[0]
    ok = make_response(event.request, 200, to_tag="bob-rr")
    ok.headers += [("Record-Route", "<sip:10.0.0.8:5082;lr>"), ("Contact", f"<{bob.contact}>"),
                   ("Content-Type", "application/sdp")]
    ok.body = SDP_B
    bob.node.endpoint.send_response(event.transaction, ok, net.now)
    net.run()
    alice.ack()
    # §12.1.2: the UAC's route set is the 2xx's Record-Route reversed: ACK and BYE go through the proxy.
    [ack] = proxy.requests("ACK")
    assert ack.request.get("Route") == "<sip:10.0.0.8:5082;lr>" and ack.request.uri == bob.contact
    alice.send_in_dialog("BYE")
    assert len(proxy.requests("BYE")) == 1 and bob.requests("BYE") == []
