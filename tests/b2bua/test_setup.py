"""Call setup through the B2BUA: the failure table row by row, hunting, timers, retransmitted and
merged INVITEs, Max-Forwards, Require. Real sans-IO endpoints in memory, a hand-moved clock."""

from __future__ import annotations

import re

import pytest

from gateway.b2bua import propagation
from gateway.config import StaticRoute
from gateway.sip.message import Request, Response, make_response
from tests.b2bua.harness import SDP_A, SDP_B, Network, Phone, bind, make_gateway, no_state_left

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]
PHONES = [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")]
ALICE, DESK, MOBILE = "10.0.0.1", "10.0.0.2", "10.0.0.3"


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def parts(net: Network) -> tuple[object, object, Phone, Phone]:
    b2bua, recorder = make_gateway(net, ROUTES)
    return b2bua, recorder, Phone(net, ALICE, 5061, "alice"), Phone(net, "10.0.0.2", 5062, "bob")


@pytest.fixture
def hunt(net: Network) -> tuple[object, object, Phone, Phone, Phone]:
    """1001 is registered twice: the desk phone (most recent, tried first), then the mobile."""
    b2bua, recorder = make_gateway(net, PHONES)
    alice = Phone(net, ALICE, 5061, "alice")
    desk = Phone(net, DESK, 5062, "desk")
    mobile = Phone(net, MOBILE, 5063, "mobile")
    for contact, at in ((f"sip:1001@{MOBILE}:5063", net.now - 1), (f"sip:1001@{DESK}:5062", net.now)):
        bind(b2bua, "1001", contact, at)
    return b2bua, recorder, alice, desk, mobile


# -- the failure table, row by row --------------------------------------------------------------
@pytest.mark.parametrize(
    ("callee_status", "caller_status"),
    [
        *[(status, 480) for status in (300, 301, 302, 305, 380)],  # redirects are not followed
        (401, 502), (407, 502),  # credentials the gateway does not own
        (408, 408),
        *[(status, status) for status in (400, 403, 404, 410, 415, 480, 484, 486, 488, 603, 600, 604, 606)],
        *[(status, 502) for status in (500, 501, 502, 503, 504, 505, 580)],
    ],
)
def test_each_failure_row_is_what_the_caller_sees(net: Network, parts, callee_status: int,
                                                  caller_status: int) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(180)
    bob.answer(callee_status, method="INVITE")
    assert alice.finals() == [caller_status]
    final = alice.responses()[-1]
    assert final.to_tag == alice.responses()[1].to_tag  # the early dialog's tag, one dialog for alice
    assert final.body == b"" and final.get("Contact") is None
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    assert recorder.events[-1].status == caller_status  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_redirect_contact_is_not_followed(parts) -> None:
    _, _, alice, bob = parts
    alice.call("2000")
    redirect = bob.answer(302)
    assert redirect.get("Contact") is not None
    assert alice.finals() == [480] and alice.responses()[-1].get("Contact") is None
    assert len(bob.requests("INVITE")) == 1


@pytest.mark.parametrize("status", sorted(propagation.HUNT_ON - {propagation.UNREACHABLE}) + [503])
def test_retryable_failure_hunts_to_the_next_target(hunt, status: int) -> None:
    _, recorder, alice, desk, mobile = hunt
    alice.call("1001")
    desk.answer(180)
    desk.answer(status, method="INVITE")
    [invite] = mobile.requests("INVITE")
    assert invite.request.body == SDP_A
    assert invite.request.call_id != desk.requests("INVITE")[0].request.call_id  # a new leg B dialog
    assert alice.finals() == []  # the caller hears nothing of the desk's failure
    mobile.answer(180)
    mobile.answer(200, SDP_B, method="INVITE")
    assert alice.finals() == [200]
    ringing = [r for r in alice.responses() if r.status == 180]
    assert len(ringing) == 2 and ringing[0].to_tag == ringing[1].to_tag == alice.responses()[-1].to_tag
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [486, 404, 603, 600, 488, 401, 302])
def test_final_failure_does_not_hunt(net: Network, hunt, status: int) -> None:
    b2bua, _, alice, desk, mobile = hunt
    alice.call("1001")
    desk.answer(status)
    assert alice.finals() == [propagation.failure_status(status)]
    assert mobile.requests() == []
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


@pytest.mark.parametrize(("last", "caller_status"), [(480, 480), (503, 502), (408, 408)])
def test_when_every_target_fails_the_last_failure_is_mapped(net: Network, hunt, last: int,
                                                            caller_status: int) -> None:
    b2bua, recorder, alice, desk, mobile = hunt
    alice.call("1001")
    desk.answer(503)
    mobile.answer(last)
    assert alice.finals() == [caller_status]
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_silent_first_target_hunts_after_timer_b(net: Network, hunt) -> None:
    b2bua, _, alice, desk, mobile = hunt
    net.drop = lambda data, target: target[1] == DESK  # the desk phone is unplugged
    alice.call("1001")
    assert mobile.requests() == []
    net.advance(33)  # Timer B = 64*T1 on the desk's INVITE: treated as 408, which hunts
    [invite] = mobile.requests("INVITE")
    mobile.answer(200, SDP_B)
    assert alice.finals() == [200]
    alice.ack()
    alice.send_in_dialog("BYE")
    mobile.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_no_answer_at_all_is_408_and_nothing_leaks(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    net.drop = lambda data, target: target[1] == "10.0.0.2"
    alice.call("2000")
    net.advance(33)
    assert alice.finals() == [408]
    assert recorder.events[-1].status == 408  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_ringing_forever_is_cancelled_after_timer_c_and_answered_408(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(180)
    net.advance(170)
    assert bob.cancels() == [] and alice.finals() == []
    # §16.6 step 11 / §16.8: Timer C (> 3 min) bounds the ringing; on expiry the INVITE is cancelled.
    net.advance(20)
    assert len(bob.cancels()) == 1
    [cancel] = bob.cancels()
    bob.node.endpoint.send_response(cancel.invite_transaction, _final(cancel.invite_transaction.request, 487),
                                    net.now)
    net.run()
    assert alice.finals() == [408]  # §16.7 step 2 for Timer C: as if 408 had arrived
    assert recorder.kinds() == ["CallOffered", "CallFailed"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_ringing_forever_on_the_first_target_hunts_after_timer_c(net: Network, hunt) -> None:
    b2bua, _, alice, desk, mobile = hunt
    alice.call("1001")
    desk.answer(180)
    net.advance(190)
    [cancel] = desk.cancels()
    desk.node.endpoint.send_response(cancel.invite_transaction, _final(cancel.invite_transaction.request, 487),
                                     net.now)
    net.run()
    assert len(mobile.requests("INVITE")) == 1 and alice.finals() == []
    mobile.answer(486)
    assert alice.finals() == [486]


def test_ringing_then_answering_before_timer_c_is_a_call(net: Network, parts) -> None:
    _, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(180)
    net.advance(170)
    bob.answer(200, SDP_B, method="INVITE")
    alice.ack()
    net.advance(30)  # Timer C must be gone with the answer
    assert bob.cancels() == [] and bob.requests("BYE") == []
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]  # type: ignore[attr-defined]


def _final(request: Request, status: int) -> Response:
    return make_response(request, status, to_tag="b-final")


# -- retransmitted and merged INVITEs -------------------------------------------------------------
def test_retransmitted_invite_is_absorbed_one_leg_b_only(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    net.drop = lambda data, target: target[1] == ALICE and data.startswith(b"SIP/2.0 100")
    alice.call("2000")
    net.advance(2.0)  # no 100 Trying reaches alice: Timer A retransmits her INVITE (same branch)
    retransmitted = [d for d in net.wire if d.startswith(b"INVITE sip:2000@")]
    assert len(retransmitted) >= 3
    assert len(bob.requests("INVITE")) == 1
    assert recorder.kinds() == ["CallOffered"]  # type: ignore[attr-defined]
    assert len(b2bua.calls) == 1  # type: ignore[attr-defined]


def test_same_invite_on_a_second_branch_is_482(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    first = alice.call("2000")
    # The same request (Call-ID, From tag, CSeq) arriving again on a new branch: a loop or a
    # parallel fork upstream. §8.2.2.2: 482 Loop Detected, and no second leg B.
    again = Request("INVITE", first.uri, [(n, v) for n, v in first.headers if n != "Via"], first.body)
    alice.send(again)
    assert len(bob.requests("INVITE")) == 1
    [*_, looped] = alice.responses()
    assert looped.status == 482 and looped.cseq == first.cseq
    assert recorder.kinds() == ["CallOffered"]  # type: ignore[attr-defined]
    bob.answer(200, SDP_B)
    assert alice.finals() == [482, 200]  # the first INVITE is unaffected


def test_same_call_id_with_another_from_tag_is_a_new_call(net: Network, parts) -> None:
    _, recorder, alice, bob = parts
    first = alice.call("2000")
    fork = Request("INVITE", first.uri, [(n, v.replace(first.from_tag or "", "fork2") if n == "From" else v)
                                          for n, v in first.headers if n != "Via"], first.body)
    alice.send(fork)
    # Not the same request (§8.2.2.2 compares From tag, Call-ID and CSeq): a second fork upstream.
    assert len(bob.requests("INVITE")) == 2
    assert recorder.kinds() == ["CallOffered", "CallOffered"]  # type: ignore[attr-defined]


# -- Max-Forwards, Require, session timers --------------------------------------------------------
@pytest.mark.parametrize(("incoming", "outgoing"), [("10", 9), ("1", 0), (None, 69)])
def test_max_forwards_is_decremented_on_leg_b(parts, incoming: str | None, outgoing: int) -> None:
    _, _, alice, bob = parts
    alice.call("2000", extra=[("Max-Forwards", incoming)] if incoming else None)
    [invite] = bob.requests("INVITE")
    assert invite.request.max_forwards == outgoing


def test_max_forwards_zero_is_483_and_no_call(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000", extra=[("Max-Forwards", "0")])
    assert alice.finals() == [483] and bob.requests() == []
    assert recorder.events == []  # type: ignore[attr-defined]
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_relayed_in_dialog_request_carries_a_decremented_max_forwards(parts) -> None:
    _, _, alice, bob = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    alice.ack()
    assert alice.dialog is not None
    info = alice.dialog.create_request("INFO", b"", [("Max-Forwards", "3")])
    alice.send(info)
    assert bob.requests("INFO")[0].request.max_forwards == 2


def test_relayed_in_dialog_request_with_max_forwards_zero_is_483(parts) -> None:
    _, _, alice, bob = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    alice.ack()
    assert alice.dialog is not None
    alice.send(alice.dialog.create_request("INFO", b"", [("Max-Forwards", "0")]))
    assert alice.finals("INFO") == [483] and bob.requests("INFO") == []


@pytest.mark.parametrize(("required", "lacking"), [
    ("100rel", {"100rel"}), ("foo", {"foo"}), ("100rel, foo", {"100rel", "foo"}), ("100rel, timer", {"100rel"}),
])
def test_invite_requiring_an_extension_we_lack_is_420(parts, required: str, lacking: set[str]) -> None:
    _, recorder, alice, bob = parts
    alice.call("2000", extra=[("Require", required)])
    # §8.2.2.3: 420 with every option tag we do not support listed in Unsupported ("timer" is supported).
    assert alice.finals() == [420]
    unsupported = {tag.strip() for tag in (alice.responses()[-1].get("Unsupported") or "").split(",")}
    assert unsupported == lacking
    assert bob.requests() == [] and recorder.events == []  # type: ignore[attr-defined]


def test_in_dialog_request_requiring_an_extension_we_lack_is_420(parts) -> None:
    _, _, alice, bob = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    alice.ack()
    assert alice.dialog is not None
    alice.send(alice.dialog.create_request("UPDATE", b"", [("Require", "100rel")]))
    assert alice.finals("UPDATE") == [420] and bob.requests("UPDATE") == []


# -- 2xx from dialogs the call no longer wants (§13.2.2.4) ---------------------------------------
def test_second_fork_answering_is_acked_and_byed(net: Network, parts) -> None:
    b2bua, recorder, alice, bob = parts
    alice.call("2000")
    bob.answer(200, SDP_B)
    event = bob.requests("INVITE")[0]
    # A forking proxy in front of bob lets a second phone answer the same INVITE (another To tag).
    fork = make_response(event.request, 200, to_tag="fork2")
    fork.headers += [("Contact", f"<sip:bob2@{DESK}:5062>"), ("Content-Type", "application/sdp")]
    fork.body = SDP_B
    bob.node.endpoint.send_response(event.transaction, fork, net.now)
    net.run()
    acks = [e.request for e in bob.requests("ACK")]
    byes = [e.request for e in bob.requests("BYE")]
    assert [a.to_tag for a in acks] == ["fork2"] and [b.to_tag for b in byes] == ["fork2"]
    assert byes[0].uri == f"sip:bob2@{DESK}:5062"
    assert alice.finals() == [200]  # alice sees one answer, the first
    alice.ack()
    assert [a.to_tag for a in (e.request for e in bob.requests("ACK"))][-1] != "fork2"
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]  # type: ignore[attr-defined]
    alice.send_in_dialog("BYE")
    assert [b.to_tag for b in (e.request for e in bob.requests("BYE"))][-1] != "fork2"
    for e in bob.requests("BYE"):
        bob.node.endpoint.send_response(e.transaction, make_response(e.request, 200), net.now)
    net.advance(40)
    assert no_state_left(b2bua)  # type: ignore[arg-type]


def test_target_answering_after_hunting_moved_on_is_acked_and_byed(net: Network, hunt) -> None:
    b2bua, recorder, alice, desk, mobile = hunt
    # The desk rings, but none of its answers reach the gateway (its responses name it in To).
    net.drop = lambda data, target: data.startswith(b"SIP/2.0") and f"@{DESK}:5062".encode() in data
    alice.call("1001")
    assert len(desk.requests("INVITE")) == 1
    net.advance(33)  # Timer B on the desk: the mobile is tried
    net.drop = lambda data, target: False
    assert len(mobile.requests("INVITE")) == 1
    desk.answer(200, SDP_B, index=0)  # the desk's user picks up, too late
    assert len(desk.requests("ACK")) == 1 and len(desk.requests("BYE")) == 1
    assert alice.finals() == []  # nothing of it reaches alice
    mobile.answer(200, SDP_B)
    assert alice.finals() == [200]
    assert recorder.kinds() == ["CallOffered", "CallAnswered"]  # type: ignore[attr-defined]
