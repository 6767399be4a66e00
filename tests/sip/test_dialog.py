"""Dialogs (RFC 3261 §12): creation on both sides, CSeq order, route sets, target refresh."""

from __future__ import annotations

import pytest

from gateway.sip.errors import LocalProtocolError, RemoteProtocolError
from gateway.sip.events import RequestReceived, ResponseReceived
from gateway.sip.message import Request, Response, make_response
from tests.helpers.sip_dialog import Dialog
from tests.sip.memnet import MemNet, Node


def _invite(record_route: list[str] | None = None) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1"),
        ("From", '"Alice" <sip:alice@a.example>;tag=fromtag'),
        ("To", "<sip:bob@b.example>"),
        ("Call-ID", "call-1"),
        ("CSeq", "10 INVITE"),
        ("Contact", "<sip:alice@10.0.0.1:5060>"),
    ]
    headers += [("Record-Route", value) for value in record_route or []]
    return Request("INVITE", "sip:bob@b.example", headers)


def _answer(invite: Request, status: int = 200, contact: str = "<sip:bob@10.0.0.2:5060>") -> Response:
    response = make_response(invite, status, to_tag="totag")
    response.add("Contact", contact)
    for value in invite.get_all("Record-Route"):
        response.add("Record-Route", value)
    return response


def _in_dialog(method: str, cseq: int, contact: str | None = None) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK9"),
        ("From", "<sip:bob@b.example>;tag=totag"),
        ("To", "<sip:alice@a.example>;tag=fromtag"),
        ("Call-ID", "call-1"),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact:
        headers.append(("Contact", contact))
    return Request(method, "sip:alice@10.0.0.1:5060", headers)


def test_uac_dialog_takes_ids_targets_and_reversed_record_route() -> None:
    invite = _invite(["<sip:p1.example;lr>", "<sip:p2.example;lr>"])
    dialog = Dialog.from_uac(invite, _answer(invite))
    assert dialog.id == ("call-1", "fromtag", "totag")
    assert dialog.local_uri == "sip:alice@a.example" and dialog.remote_uri == "sip:bob@b.example"
    assert dialog.remote_target == "sip:bob@10.0.0.2:5060"
    assert dialog.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]  # §12.1.2
    assert dialog.local_cseq == 10 and dialog.remote_cseq is None and dialog.confirmed


def test_uas_dialog_keeps_record_route_in_order_and_their_cseq() -> None:
    invite = _invite(["<sip:p1.example;lr>", "<sip:p2.example;lr>"])
    dialog = Dialog.from_uas(invite, "totag", "sip:bob@10.0.0.2:5060", local_cseq=500)
    assert dialog.id == ("call-1", "totag", "fromtag")
    assert dialog.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]  # §12.1.1
    assert dialog.remote_target == "sip:alice@10.0.0.1:5060" and dialog.remote_cseq == 10
    bye = dialog.create_request("BYE")
    assert bye.cseq == (501, "BYE")
    assert bye.from_tag == "totag" and bye.to_tag == "fromtag"
    assert bye.to.display == "Alice"  # the remote party keeps its display name


def test_create_request_increments_cseq_and_ack_reuses_the_invite_number() -> None:
    invite = _invite()
    dialog = Dialog.from_uac(invite, _answer(invite))
    ack = dialog.create_ack(10, body=b"v=0\r\n", headers=[("Content-Type", "application/sdp")])
    assert ack.cseq == (10, "ACK") and ack.body == b"v=0\r\n" and ack.get("Content-Type") == "application/sdp"
    assert dialog.local_cseq == 10
    reinvite = dialog.create_request("INVITE")
    bye = dialog.create_request("BYE")
    assert (reinvite.cseq, bye.cseq) == ((11, "INVITE"), (12, "BYE"))
    assert reinvite.get("Contact") == "<sip:alice@10.0.0.1:5060>"  # target refresh carries Contact
    assert bye.get("Contact") is None
    update = dialog.create_request("UPDATE", headers=[("Contact", "<sip:alice@203.0.113.5>")])
    assert update.get_all("Contact") == ["<sip:alice@203.0.113.5>"]  # the TU's own Contact wins
    assert bye.call_id == "call-1" and bye.from_.display == "Alice"
    assert dialog.local_cseq == 13
    with pytest.raises(LocalProtocolError):
        dialog.create_request("CANCEL")


def test_loose_route_set_keeps_request_uri_as_remote_target() -> None:
    invite = _invite(["<sip:p1.example;lr>", "<sip:p2.example;lr>"])
    dialog = Dialog.from_uac(invite, _answer(invite))
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:bob@10.0.0.2:5060"
    assert bye.get_all("Route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]  # §12.2.1.1
    assert dialog.next_hop() == "sip:p2.example;lr"


def test_strict_first_route_takes_the_request_uri_and_target_goes_last() -> None:
    invite = _invite(["<sip:p1.example;lr>", "<sip:strict.example;method=INVITE>"])
    dialog = Dialog.from_uac(invite, _answer(invite))
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:strict.example"  # §12.2.1.1: parameters not allowed in a R-URI removed
    assert bye.get_all("Route") == ["<sip:p1.example;lr>", "<sip:bob@10.0.0.2:5060>"]


def test_no_route_set_sends_straight_to_the_target() -> None:
    invite = _invite()
    dialog = Dialog.from_uac(invite, _answer(invite))
    bye = dialog.create_request("BYE")
    assert bye.uri == dialog.next_hop() == "sip:bob@10.0.0.2:5060"
    assert bye.get("Route") is None


def test_out_of_order_cseq_is_rejected_with_500() -> None:
    invite = _invite()
    dialog = Dialog.from_uac(invite, _answer(invite))
    dialog.receive_request(_in_dialog("INFO", 5))
    dialog.receive_request(_in_dialog("INFO", 7))
    with pytest.raises(RemoteProtocolError) as raised:
        dialog.receive_request(_in_dialog("INFO", 6))  # §12.2.2
    assert raised.value.status_hint == 500
    assert dialog.remote_cseq == 7
    dialog.receive_request(_in_dialog("ACK", 1))  # ACK carries its INVITE's number: never checked
    assert dialog.remote_cseq == 7


def test_uas_rejects_a_request_older_than_the_invite() -> None:
    dialog = Dialog.from_uas(_invite(), "totag")
    with pytest.raises(RemoteProtocolError):
        dialog.receive_request(_in_dialog("BYE", 9))


def test_reinvite_and_update_refresh_the_remote_target_but_info_does_not() -> None:
    invite = _invite()
    dialog = Dialog.from_uac(invite, _answer(invite))
    dialog.receive_request(_in_dialog("INFO", 1, contact="<sip:bob@198.51.100.1>"))
    assert dialog.remote_target == "sip:bob@10.0.0.2:5060"
    dialog.receive_request(_in_dialog("INVITE", 2, contact="<sip:bob@198.51.100.2>"))
    assert dialog.remote_target == "sip:bob@198.51.100.2"
    dialog.receive_request(_in_dialog("UPDATE", 3, contact="<sip:bob@198.51.100.3;transport=tcp>"))
    assert dialog.remote_target == "sip:bob@198.51.100.3;transport=tcp"
    assert dialog.create_request("BYE").uri == "sip:bob@198.51.100.3;transport=tcp"


def test_2xx_to_reinvite_refreshes_target_and_confirms_early_dialog_route_set() -> None:
    invite = _invite(["<sip:p1.example;lr>"])
    ringing = _answer(invite, 180)
    early = Dialog.from_uac(invite, ringing)
    assert not early.confirmed
    ok = make_response(invite, 200, to_tag="totag")
    ok.add("Contact", "<sip:bob@10.0.0.9>")
    ok.add("Record-Route", "<sip:p9.example;lr>")
    early.receive_response(ok)
    assert early.confirmed and early.route_set == ["<sip:p9.example;lr>"]  # §13.2.2.4
    reinvite = early.create_request("INVITE")
    answer = make_response(reinvite, 200)
    answer.add("Contact", "<sip:bob@10.0.0.10>")
    early.receive_response(answer)
    assert early.remote_target == "sip:bob@10.0.0.10" and early.route_set == ["<sip:p9.example;lr>"]
    failure = make_response(early.create_request("UPDATE"), 488)
    failure.add("Contact", "<sip:bob@elsewhere>")
    early.receive_response(failure)
    assert early.remote_target == "sip:bob@10.0.0.10"


def test_dialog_needs_tags_and_contact() -> None:
    invite = _invite()
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite, make_response(invite, 200))  # no To tag
    no_contact = make_response(invite, 200, to_tag="t")
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite, no_contact)
    invite.remove("Contact")
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uas(invite, "t")


def test_bye_built_by_the_dialog_travels_between_two_endpoints() -> None:
    net = MemNet()
    alice: Node = net.add("alice", 5161)
    bob: Node = net.add("bob", 5162)
    invite = alice.request("INVITE", bob)
    alice.endpoint.send_request(invite, bob.target(), net.now)
    net.run()
    [offer] = bob.take(RequestReceived)
    tag = bob.endpoint.new_tag()
    bob_dialog = Dialog.from_uas(offer.request, tag, "sip:bob@127.0.0.1:5162")
    bob.respond(offer, 200, tag, net.now)
    bob_dialog.confirm()
    net.run()
    [ok] = [e for e in alice.take(ResponseReceived) if e.response.status == 200]
    alice_dialog = Dialog.from_uac(invite, ok.response)
    alice.endpoint.send_stateless(alice_dialog.create_ack(invite.cseq[0]), bob.target())
    net.run()
    bye = bob_dialog.create_request("BYE")
    bob.endpoint.send_request(bye, alice.target(), net.now)
    net.run()
    [received] = alice.take(RequestReceived)
    alice_dialog.receive_request(received.request)
    assert received.request.method == "BYE"
    assert (received.request.call_id, received.request.to_tag, received.request.from_tag) == alice_dialog.id
    assert alice_dialog.remote_cseq == bye.cseq[0]
