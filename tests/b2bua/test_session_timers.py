"""RFC 4028 session timers through the B2BUA, and the [sip] max_call_seconds safety net: the offer
and answer cross both ways, 422 below the gateway's Min-SE, refreshes keep a call, a call nobody
refreshes (a caller that vanished) is ended on both legs at interval - min(32, interval/3).
Real sans-IO endpoints in memory, a hand-moved clock."""

from __future__ import annotations

import re

import pytest

from gateway import metrics
from gateway.b2bua.controller import B2bua
from gateway.b2bua.observer import MetricsObserver
from gateway.config import StaticRoute
from tests.b2bua.harness import SDP_A, SDP_B, Network, Phone, Recorder, make_gateway, no_state_left

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]
SDP_A2 = SDP_A.replace(b"4000", b"4002")
OFFER_90 = [("Supported", "timer"), ("Session-Expires", "90;refresher=uac")]
# §10: the BYE goes at the interval minus min(32 s, a third of it): 60 s for 90 s, 1768 s for 1800 s.
DEADLINE_90 = 60.0


@pytest.fixture
def net() -> Network:
    return Network()


def _parts(net: Network, **options: object) -> tuple[B2bua, Recorder, Phone, Phone]:
    b2bua, recorder = make_gateway(net, ROUTES, **options)  # type: ignore[arg-type]
    return b2bua, recorder, Phone(net, "10.0.0.1", 5061, "alice"), Phone(net, "10.0.0.2", 5062, "bob")


def _connect(alice: Phone, bob: Phone, offer: list[tuple[str, str]], answer: list[tuple[str, str]]) -> None:
    alice.call("2000", extra=offer)
    bob.answer(200, SDP_B, method="INVITE", extra=answer)
    alice.ack()
    assert alice.finals() == [200] and len(bob.requests("ACK")) == 1


def _timed_call(net: Network, **options: object) -> tuple[B2bua, Recorder, Phone, Phone]:
    """A confirmed call that agreed on a 90 s session refreshed by the caller."""
    parts = _parts(net, **options)
    _connect(parts[2], parts[3], OFFER_90, [("Require", "timer"), ("Session-Expires", "90;refresher=uac")])
    return parts


def _byes(*phones: Phone) -> list[int]:
    return [len(phone.requests("BYE")) for phone in phones]


def _answer_byes_and_settle(net: Network, b2bua: B2bua, *phones: Phone) -> None:
    for phone in phones:
        phone.answer(200, method="BYE")
    net.advance(40)
    assert no_state_left(b2bua)


# -- negotiation -------------------------------------------------------------------------------------
def test_session_timer_offer_reaches_leg_b_and_its_answer_reaches_leg_a(net: Network) -> None:
    _, _, alice, bob = _parts(net)
    offer = [("Supported", "100rel, timer"), ("Session-Expires", "1800;refresher=uac"), ("Min-SE", "120")]
    alice.call("2000", extra=offer)
    [invite] = bob.requests("INVITE")
    # End to end: the interval, who refreshes and the minimum; Supported carries only what crosses.
    assert invite.request.get("Session-Expires") == "1800;refresher=uac"
    assert invite.request.get("Min-SE") == "120"
    assert invite.request.get_all("Supported") == ["timer"] and invite.request.get("Require") is None
    bob.answer(200, SDP_B, method="INVITE", extra=[("Require", "timer"), ("Session-Expires", "1500;refresher=uas")])
    ok = alice.responses()[-1]
    assert ok.status == 200 and ok.get("Session-Expires") == "1500;refresher=uas" and ok.get("Require") == "timer"


@pytest.mark.parametrize(("offered", "min_se", "relayed"), [
    ("7200", None, "1800"),  # §8.1: lowered to the gateway's maximum...
    ("7200;refresher=uas", "3600", "3600;refresher=uas"),  # ...but never below the Min-SE asked for
    ("600", None, "600"),
])
def test_long_session_intervals_are_lowered_to_the_gateway_maximum(
    net: Network, offered: str, min_se: str | None, relayed: str
) -> None:
    _, _, alice, bob = _parts(net)
    extra = [("Supported", "timer"), ("Session-Expires", offered)] + ([("Min-SE", min_se)] if min_se else [])
    alice.call("2000", extra=extra)
    assert bob.requests("INVITE")[0].request.get("Session-Expires") == relayed


@pytest.mark.parametrize(("offer", "min_se"), [
    ([("Session-Expires", "60")], "90"),
    ([("Session-Expires", "89"), ("Min-SE", "30")], "90"),
    ([("Session-Expires", "100"), ("Min-SE", "120")], "120"),  # below the caller's own minimum
])
def test_interval_below_the_minimum_is_422_with_min_se_and_no_call(net: Network, offer, min_se: str) -> None:
    b2bua, recorder, alice, bob = _parts(net)
    alice.call("2000", extra=[("Supported", "timer"), *offer])
    # RFC 4028 §8.1/§6: the requester supports timers, so it hears the smallest interval accepted.
    assert alice.finals() == [422] and alice.responses()[-1].get("Min-SE") == min_se
    assert bob.requests() == [] and recorder.events == []
    net.advance(40)
    assert no_state_left(b2bua)


def test_short_interval_from_a_caller_without_timers_is_raised_not_refused(net: Network) -> None:
    _, _, alice, bob = _parts(net)
    alice.call("2000", extra=[("Session-Expires", "60")])
    # §8.1: a 422 would mean nothing to it; the interval and Min-SE go up to the minimum instead.
    [invite] = bob.requests("INVITE")
    assert invite.request.get("Session-Expires") == "90" and invite.request.get("Min-SE") == "90"
    assert invite.request.get("Supported") is None


@pytest.mark.parametrize("value", ["soon", "-5", "0", "90;refresher=both", "12345678901"])
def test_malformed_session_expires_is_400(net: Network, value: str) -> None:
    b2bua, recorder, alice, bob = _parts(net)
    alice.call("2000", extra=[("Supported", "timer"), ("Session-Expires", value)])
    assert alice.finals() == [400] and bob.requests() == [] and recorder.events == []


def test_require_timer_is_accepted_and_the_gateway_names_the_interval(net: Network) -> None:
    _, recorder, alice, bob = _parts(net)
    alice.call("2000", extra=[("Require", "timer"), ("Session-Expires", "90")])
    [invite] = bob.requests("INVITE")
    # Not relayed as Require: bob has no session timers and still takes the call.
    assert invite.request.get("Require") is None and invite.request.get("Supported") == "timer"
    bob.answer(200, SDP_B, method="INVITE")  # a callee without session timers
    ok = alice.responses()[-1]
    # §8.2: the caller supports timers, so the 2xx tells it to refresh the interval it offered.
    assert ok.status == 200 and ok.get("Session-Expires") == "90;refresher=uac" and ok.get("Require") == "timer"
    alice.ack()
    net.advance(DEADLINE_90)
    assert _byes(alice, bob) == [1, 1] and recorder.events[-1].reason == "session-expired"  # type: ignore[attr-defined]


def test_supported_timer_without_an_interval_gets_the_gateway_maximum(net: Network) -> None:
    _, _, alice, bob = _parts(net)
    alice.call("2000", extra=[("Supported", "timer")])
    # §8.1: the gateway inserts its interval so a caller that can refresh is always watched.
    assert bob.requests("INVITE")[0].request.get("Session-Expires") == "1800"


def test_leg_b_422_reaches_the_caller_with_its_min_se(net: Network) -> None:
    b2bua, _, alice, bob = _parts(net)
    alice.call("2000", extra=OFFER_90)
    bob.answer(422, method="INVITE", extra=[("Min-SE", "300")])
    assert alice.finals() == [422] and alice.responses()[-1].get("Min-SE") == "300"
    net.advance(40)
    assert no_state_left(b2bua)


# -- the watch: no refresh, the call ends ------------------------------------------------------
def test_call_nobody_refreshes_is_ended_on_both_legs_at_the_rfc_4028_deadline(net: Network) -> None:
    stats = metrics.CallStats()
    b2bua, recorder, alice, bob = _timed_call(net, observer=MetricsObserver(stats))
    net.advance(DEADLINE_90 - 0.5)
    assert _byes(alice, bob) == [0, 0] and stats.active == 1
    net.advance(0.5)
    assert _byes(alice, bob) == [1, 1]
    ended = recorder.events[-1]
    assert type(ended).__name__ == "CallEnded"
    assert (ended.ended_by, ended.reason) == ("gateway", "session-expired")  # type: ignore[attr-defined]
    assert ended.duration == pytest.approx(DEADLINE_90)  # type: ignore[attr-defined]
    # gateway_calls_active drops and the reason shows in gateway_calls_ended_total.
    assert stats.active == 0 and stats.ended_reasons == {"session-expired": 1}
    _answer_byes_and_settle(net, b2bua, alice, bob)


def test_session_expiry_with_unanswered_byes_leaves_no_state(net: Network) -> None:
    b2bua, _, alice, bob = _timed_call(net)
    net.drop = lambda data, target: True  # both phones are gone: the BYEs time out
    net.advance(DEADLINE_90 + 40)
    assert no_state_left(b2bua)


def test_a_long_interval_uses_the_32_second_margin(net: Network) -> None:
    _, _, alice, bob = _parts(net)
    _connect(alice, bob, [("Supported", "timer"), ("Session-Expires", "1800")], [("Session-Expires", "1800;refresher=uac")])
    net.advance(1768 - 0.5, step=4.5)
    assert _byes(alice, bob) == [0, 0]
    net.advance(0.5)
    assert _byes(alice, bob) == [1, 1]


# -- refreshes keep the call -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize("side", ["caller", "callee"])
def test_refresh_from_either_side_restarts_the_watch(net: Network, method: str, side: str) -> None:
    b2bua, recorder, alice, bob = _timed_call(net)
    sender, receiver = (alice, bob) if side == "caller" else (bob, alice)
    net.advance(45)
    refresher = "uac"
    sender.send_in_dialog(method, SDP_A2 if method == "INVITE" else b"", [("Supported", "timer"),
                          ("Session-Expires", f"120;refresher={refresher}")])
    [relayed] = [e.request for e in receiver.requests(method) if e.request.to_tag is not None]
    assert relayed.get("Session-Expires") == "120;refresher=uac"
    receiver.answer(200, SDP_B if method == "INVITE" else b"", method=method,
                    extra=[("Require", "timer"), ("Session-Expires", "120;refresher=uac")])
    assert sender.finals(method)[-1] == 200 and sender.responses(method)[-1].get("Session-Expires") == "120;refresher=uac"
    if method == "INVITE":
        sender.ack()
    # Past the first deadline the call stands; the new one is 120 - 32 = 88 s after the refresh.
    net.advance(88 - 0.5)
    assert _byes(alice, bob) == [0, 0] and recorder.kinds()[-1] == "CallAnswered"
    net.advance(0.5)
    assert _byes(alice, bob) == [1, 1] and recorder.events[-1].reason == "session-expired"  # type: ignore[attr-defined]
    _answer_byes_and_settle(net, b2bua, alice, bob)


def test_failed_refresh_does_not_restart_the_watch(net: Network) -> None:
    _, _, alice, bob = _timed_call(net)
    net.advance(30)
    alice.send_in_dialog("UPDATE", extra=OFFER_90)
    bob.answer(500, method="UPDATE")
    assert alice.finals("UPDATE") == [500]
    net.advance(DEADLINE_90 - 30)
    assert _byes(alice, bob) == [1, 1]


def test_refresh_agreeing_on_no_timer_stops_the_watch(net: Network) -> None:
    _, _, alice, bob = _timed_call(net)
    net.advance(30)
    alice.send_in_dialog("UPDATE")  # no Supported, no Session-Expires
    bob.answer(200, method="UPDATE")  # and no Session-Expires back: §7.4, no session timer any more
    assert alice.responses("UPDATE")[-1].get("Session-Expires") is None
    net.advance(600, step=5)
    assert _byes(alice, bob) == [0, 0]


def test_refresh_below_the_minimum_is_422_and_not_relayed(net: Network) -> None:
    _, _, alice, bob = _timed_call(net)
    alice.send_in_dialog("UPDATE", extra=[("Supported", "timer"), ("Session-Expires", "30")])
    assert alice.finals("UPDATE") == [422] and alice.responses("UPDATE")[-1].get("Min-SE") == "90"
    assert bob.requests("UPDATE") == []


# -- calls without session timers, max_call_seconds ---------------------------------------------
def test_call_without_session_timers_is_never_ended_by_the_gateway(net: Network) -> None:
    _, recorder, alice, bob = _parts(net)
    _connect(alice, bob, [], [])
    net.advance(4 * 3600, step=60)
    assert _byes(alice, bob) == [0, 0] and recorder.kinds()[-1] == "CallAnswered"


@pytest.mark.parametrize("offer", [[], OFFER_90])
def test_max_call_seconds_ends_any_call_on_both_legs(net: Network, offer) -> None:
    stats = metrics.CallStats()
    b2bua, recorder, alice, bob = _parts(net, max_call_seconds=50, observer=MetricsObserver(stats))
    _connect(alice, bob, offer, [("Session-Expires", "90;refresher=uac")] if offer else [])
    net.advance(50 - 0.5)
    assert _byes(alice, bob) == [0, 0]
    net.advance(0.5)
    assert _byes(alice, bob) == [1, 1]
    ended = recorder.events[-1]
    assert (ended.ended_by, ended.reason, ended.duration) == ("gateway", "max-duration", 50)  # type: ignore[attr-defined]
    assert stats.ended_reasons == {"max-duration": 1} and stats.active == 0
    _answer_byes_and_settle(net, b2bua, alice, bob)
    assert _byes(alice, bob) == [1, 1]  # the session watch died with the call: no second BYE


def test_max_call_seconds_before_the_callers_ack_waits_for_it_to_bye_the_caller(net: Network) -> None:
    b2bua, recorder, alice, bob = _parts(net, max_call_seconds=1)
    alice.call("2000")
    bob.answer(200, SDP_B, method="INVITE")
    net.advance(1)
    # Leg B gets its ACK and a BYE; §15: leg A's BYE waits for A's ACK of the 2xx.
    assert len(bob.requests("ACK")) == 1 and _byes(alice, bob) == [0, 1]
    assert recorder.events[-1].reason == "max-duration"  # type: ignore[attr-defined]
    bob.answer(200, method="BYE")
    alice.ack()
    assert _byes(alice, bob) == [1, 1]
    _answer_byes_and_settle(net, b2bua, alice)
    assert recorder.kinds().count("CallEnded") == 1


def test_metrics_expose_why_calls_ended() -> None:
    stats = metrics.CallStats()
    stats.ended_reasons.update({"bye": 3, "session-expired": 1})
    registry = metrics.gateway_registry({}, lambda: 0, stats, lambda: True)
    assert registry.get_sample_value("gateway_calls_ended_total", {"reason": "session-expired"}) == 1
    assert registry.get_sample_value("gateway_calls_ended_total", {"reason": "bye"}) == 3


def test_max_call_seconds_during_a_refresh_acks_its_2xx_before_the_bye(net: Network) -> None:
    b2bua, _, alice, bob = _parts(net, max_call_seconds=50)
    _connect(alice, bob, [], [])
    net.advance(49)
    alice.send_in_dialog("INVITE", SDP_A2)
    bob.answer(200, SDP_B, method="INVITE")  # relayed to alice, whose ACK has not come yet
    acks = len(bob.requests("ACK"))
    net.advance(1)
    # §13.2.2.4: bob's 2xx is ACKed before the BYE ends the dialog.
    assert len(bob.requests("ACK")) == acks + 1 and _byes(alice, bob) == [1, 1]
    assert bob.node.events.index(bob.requests("ACK")[-1]) < bob.node.events.index(bob.requests("BYE")[0])
    _answer_byes_and_settle(net, b2bua, alice, bob)
