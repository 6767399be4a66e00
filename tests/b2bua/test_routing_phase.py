"""The async routing phase: the `Call` exists (state ROUTING) before the router decides, so a CANCEL
or a retransmitted INVITE meanwhile is handled, and a late decision for a call gone is ignored.
Real sans-IO endpoints in memory, a hand-moved clock; the router answers when the test says."""

from __future__ import annotations

import pytest

from gateway.b2bua.call import ROUTING_TIMEOUT
from gateway.b2bua.events import CallOffered, CallStarted
from gateway.b2bua.observer import MetricsObserver
from gateway.b2bua.ports import TrunkSide
from gateway.metrics import CallStats
from gateway.routing.decision import RouteDecision
from gateway.routing.request import Deliver, RouteRequest
from gateway.routing.targets import RingStep, Target
from gateway.sip.auth import build_authorization
from gateway.sip.message import Request
from tests.b2bua.harness import GW, SDP_B, USERS, Network, Phone, make_gateway, no_state_left

BOB_URI = "sip:bob@10.0.0.2:5062"


class LaterRouter:
    """A router that keeps every request and decides only when the test calls `deliver`."""

    def __init__(self) -> None:
        self.asked: list[tuple[RouteRequest, Deliver]] = []

    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        self.asked.append((request, deliver))

    def deliver(self, net: Network, decision: RouteDecision, index: int = -1) -> None:
        self.asked[index][1](decision, net.now)
        net.run()


class BrokenRouter:
    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        raise RuntimeError("the CRM lookup blew up")


def ring(uri: str = BOB_URI, rule: str = "R2") -> RouteDecision:
    return RouteDecision((RingStep((Target.sip_uri(uri),), None, (rule,)),), None, (rule,))


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def parts(net: Network):
    router = LaterRouter()
    b2bua, recorder = make_gateway(net, [], router=router)
    return b2bua, recorder, router, Phone(net, "10.0.0.1", 5061, "alice"), Phone(net, "10.0.0.2", 5062, "bob")


def test_r1_decision_delivered_later_rings_the_target(net: Network, parts) -> None:
    b2bua, recorder, router, alice, bob = parts
    alice.call("2000")
    assert alice.statuses() == [100] and bob.requests() == [] and recorder.events == []
    [(request, _)] = router.asked
    [started] = recorder.setup
    assert isinstance(started, CallStarted) and started.request is request
    assert (request.request_user, request.to_user, request.caller_user, request.caller_display) == (
        "2000", "2000", "alice", "Alice")
    assert request.caller_uri == "sip:alice@10.0.0.1" and request.call_id == alice.invite.call_id  # type: ignore[union-attr]
    assert (request.trusted, request.authenticated_user, request.source) == (True, None, ("udp", "10.0.0.1", 5061))
    net.advance(5)  # the lookup takes a while; nothing happens meanwhile
    assert bob.requests() == []
    decision = ring()
    router.deliver(net, decision)
    [invite] = bob.requests("INVITE")
    assert invite.request.uri == BOB_URI
    [offered] = recorder.events
    assert isinstance(offered, CallOffered) and offered.decision is decision and offered.rule_ids == ("R2",)
    bob.answer(200, SDP_B)
    alice.ack()
    assert alice.finals() == [200] and recorder.kinds() == ["CallOffered", "CallAnswered"]


def test_cancel_during_routing_is_487_and_the_late_decision_is_ignored(net: Network, parts) -> None:
    b2bua, recorder, router, alice, bob = parts
    alice.call("2000")
    alice.cancel()
    assert alice.finals() == [487] and alice.finals("CANCEL") == [200]
    assert recorder.kinds() == ["CallFailed"] and recorder.events[0].status == 487  # type: ignore[attr-defined]
    assert no_state_left(b2bua)
    router.deliver(net, ring())  # the lookup finishes after the caller gave up
    assert bob.requests() == [] and recorder.kinds() == ["CallFailed"]
    net.advance(40)
    assert bob.requests() == [] and alice.finals() == [487] and no_state_left(b2bua)


def test_invite_retransmitted_during_routing_is_absorbed(net: Network, parts) -> None:
    b2bua, recorder, router, alice, bob = parts
    net.drop = lambda data, target: target[1] == "10.0.0.1" and data.startswith(b"SIP/2.0 100")
    alice.call("2000")
    net.advance(2.0)  # no 100 reaches alice: Timer A retransmits her INVITE while routing still runs
    assert len([d for d in net.wire if d.startswith(b"INVITE sip:2000@")]) >= 3
    assert len(router.asked) == 1 and len(recorder.setup) == 1 and len(b2bua.calls) == 1
    net.drop = lambda data, target: False
    router.deliver(net, ring())
    assert len(bob.requests("INVITE")) == 1
    bob.answer(200, SDP_B)
    assert alice.finals() == [200]


def test_rejecting_decision_is_answered_with_its_status(net: Network, parts) -> None:
    b2bua, recorder, router, alice, bob = parts
    alice.call("2000")
    router.deliver(net, RouteDecision((), 404, ("R1.no_number",)))
    assert alice.finals() == [404] and bob.requests() == []
    assert recorder.kinds() == ["CallFailed"] and recorder.events[0].status == 404  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)


def test_bye_during_routing_names_no_dialog_and_the_call_goes_on(net: Network, parts) -> None:
    _, _, router, alice, bob = parts
    alice.call("2000")
    invite = alice.invite
    assert invite is not None
    bye = Request("BYE", invite.uri, [
        ("From", invite.get("From") or ""), ("To", f"<sip:2000@{GW[0]}>;tag=guess"),
        ("Call-ID", invite.call_id), ("CSeq", "2 BYE"),
    ])
    alice.send(bye)
    assert alice.finals("BYE") == [481]  # §15.1.2: no dialog with that tag
    router.deliver(net, ring())
    assert len(bob.requests("INVITE")) == 1


def test_router_that_never_answers_fails_the_call_not_the_gateway(net: Network, parts) -> None:
    b2bua, recorder, router, alice, bob = parts
    alice.call("2000")
    net.advance(ROUTING_TIMEOUT + 1)
    assert alice.finals() == [500] and recorder.kinds() == ["CallFailed"]
    router.deliver(net, ring())
    assert bob.requests() == []
    net.advance(40)
    assert no_state_left(b2bua)


def test_router_raising_fails_the_call_with_500(net: Network) -> None:
    b2bua, recorder = make_gateway(net, [], router=BrokenRouter())
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("2000")
    assert alice.finals() == [500] and recorder.kinds() == ["CallFailed"]
    net.advance(40)
    assert no_state_left(b2bua)


def test_digest_user_that_authorised_the_invite_reaches_routing(net: Network) -> None:
    router = LaterRouter()
    make_gateway(net, [], router=router, trusted=lambda host, port: False)
    alice = Phone(net, "10.0.0.1", 5061, "1001")
    alice.call("2000")
    assert alice.finals() == [407] and router.asked == []
    challenge = alice.responses()[-1].get("Proxy-Authenticate") or ""
    authorization = build_authorization(challenge, method="INVITE", uri=f"sip:2000@{GW[0]}:{GW[1]}",
                                        username="1001", password=USERS["1001"], cnonce="c0ffee")
    alice.call("2000", extra=[("Proxy-Authorization", authorization)])
    [(request, _)] = router.asked
    assert request.trusted is False and request.authenticated_user == "1001"


def test_asserted_identity_and_privacy_reach_routing(net: Network, parts) -> None:
    _, _, router, alice, _ = parts
    alice.call("2000", extra=[("P-Asserted-Identity", '"Main, Office" <sip:+4930123@trunk>, <tel:+4930123>'),
                              ("Privacy", "id")])
    [(request, _)] = router.asked
    assert (request.asserted, request.privacy) == ("sip:+4930123@trunk", "id")


def test_calls_that_never_ring_are_counted_failed_and_not_active(net: Network) -> None:
    stats = CallStats()
    router = LaterRouter()
    make_gateway(net, [], router=router, observer=MetricsObserver(stats))
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("2000")
    assert stats.active == 1  # routing: already a call in progress
    alice.cancel()
    alice.call("2001")
    router.deliver(net, RouteDecision((), 404, ("R1.no_number",)))
    assert (stats.active, stats.failed, stats.answered) == (0, 2, 0)


def test_rejection_without_a_failure_status_is_500(net: Network, parts) -> None:
    _, recorder, router, alice, _ = parts
    alice.call("2000")
    router.deliver(net, RouteDecision((), 200, ("broken",)))
    assert alice.finals() == [500] and recorder.events[-1].status == 500  # type: ignore[attr-defined]


def test_target_no_invite_can_reach_is_skipped_as_unreachable(net: Network, parts) -> None:
    b2bua, _, router, alice, bob = parts
    alice.call("2000")
    bad = RingStep((Target.sip_uri("sip:bob@[::1"), Target.sip_uri(BOB_URI)), None, ("R2",))
    router.deliver(net, RouteDecision((bad,), None, ("R2",)))
    assert len(bob.requests("INVITE")) == 1
    bob.answer(200, SDP_B)
    assert alice.finals() == [200]
    alice.call("2001")
    router.deliver(net, RouteDecision((RingStep((Target.sip_uri("sip:bob@[::1"),)),), None, ("R2",)))
    assert alice.finals() == [200, 503]  # the second call: nobody to ring


class PbxLogin(TrunkSide):
    """User 1001 of the harness's gate stands for a customer PBX's trunk login; 10.0.0.7 is a provider."""

    def by_login(self, username: str) -> int | None:
        return 3 if username == "1001" else None

    def by_source(self, host: str, port: int) -> int | None:
        return 1 if host == "10.0.0.7" else None


def test_t1_a_pbx_authenticating_with_its_trunk_login_is_a_trunk_call(net: Network) -> None:
    router = LaterRouter()
    make_gateway(net, [], router=router, trusted=lambda host, port: False, trunks=PbxLogin())
    pbx = Phone(net, "10.0.0.1", 5061, "1001")
    pbx.call("2000")
    challenge = pbx.responses()[-1].get("Proxy-Authenticate") or ""
    authorization = build_authorization(challenge, method="INVITE", uri=f"sip:2000@{GW[0]}:{GW[1]}",
                                        username="1001", password=USERS["1001"], cnonce="c0ffee")
    pbx.call("2000", extra=[("Proxy-Authorization", authorization)])
    [(request, _)] = router.asked
    assert (request.trusted, request.trunk_id, request.authenticated_user) == (True, 3, None)


def test_t1_a_trunk_trusted_by_source_is_not_challenged(net: Network) -> None:
    router = LaterRouter()
    make_gateway(net, [], router=router, trusted=lambda host, port: False, trunks=PbxLogin())
    Phone(net, "10.0.0.7", 5060, "provider").call("+33184880000")
    [(request, _)] = router.asked
    assert (request.trusted, request.trunk_id) == (True, 1)
    stranger = Phone(net, "10.0.0.8", 5060, "stranger")
    stranger.call("+33184880000")
    assert stranger.finals() == [407] and len(router.asked) == 1
