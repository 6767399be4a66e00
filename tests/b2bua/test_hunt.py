"""Hunting as ring steps: every target of a step rings at once (one leg B each), the first 2xx wins
and the rest are cancelled, a step's ring time moves on to the next step, an employee rings every
phone registered for their extension, and the caller hears the best failure (RFC 3261 §16.7).
Real sans-IO endpoints in memory, a hand-moved clock; decisions come from a scripted router."""

from __future__ import annotations

import pytest

from gateway.b2bua.events import CallAnswered, LegOffered
from gateway.b2bua.propagation import best_failure
from gateway.routing.decision import RouteDecision
from gateway.routing.request import Deliver, RouteRequest
from gateway.routing.targets import RingStep, Target
from gateway.sip.message import make_response
from tests.b2bua.harness import SDP_B, Network, Phone, bind, make_gateway, no_state_left

BOB, CAROL, DAVE = "10.0.0.2", "10.0.0.3", "10.0.0.4"


def phone(host: str, port: int, employee_id: int | None = None) -> Target:
    return Target.phone(f"sip:{port}@{host}:{port}", employee_id=employee_id)


class ScriptedRouter:
    """Decides every call with `decision` at once."""

    def __init__(self) -> None:
        self.decision = RouteDecision((), 404, ())

    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        deliver(self.decision, request.at)


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def gw(net: Network):
    router = ScriptedRouter()
    b2bua, recorder = make_gateway(net, [], router=router)
    phones = [Phone(net, host, port, name) for host, port, name in (
        ("10.0.0.1", 5061, "alice"), (BOB, 5062, "bob"), (CAROL, 5063, "carol"), (DAVE, 5064, "dave"))]
    return b2bua, recorder, router, phones


def steps(*groups: tuple[tuple[Target, ...], float | None]) -> RouteDecision:
    return RouteDecision(tuple(RingStep(targets, ring_time, ("R2",)) for targets, ring_time in groups), None, ("R2",))


def reject_cancelled(callee: Phone, net: Network) -> None:
    """The callee answers our CANCEL's INVITE 487, as a phone does."""
    for cancel in callee.cancels():
        callee.node.endpoint.send_response(
            cancel.invite_transaction, make_response(cancel.invite_transaction.request, 487, to_tag="x"), net.now)
    net.run()


def test_r2_ring_all_step_forks_and_the_first_answer_wins(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, carol, _) = gw
    bob_target, carol_target = phone(BOB, 5062), phone(CAROL, 5063)
    router.decision = steps(((bob_target, carol_target), None))
    alice.call("100")
    [to_bob], [to_carol] = bob.requests("INVITE"), carol.requests("INVITE")
    assert to_bob.request.call_id != to_carol.request.call_id  # one leg B per target
    assert [e.target for e in recorder.setup if isinstance(e, LegOffered)] == [bob_target, carol_target]
    bob.answer(180)
    carol.answer(180)
    assert [s for s in alice.statuses() if s == 180] == [180, 180]
    assert len({r.to_tag for r in alice.responses() if r.status == 180}) == 1  # one early dialog for alice
    carol.answer(200, SDP_B, method="INVITE")
    assert alice.finals() == [200] and len(bob.cancels()) == 1 and carol.cancels() == []
    reject_cancelled(bob, net)
    assert alice.finals() == [200]  # bob's 487 is absorbed
    answered = recorder.events[-1]
    assert isinstance(answered, CallAnswered) and answered.target == carol_target
    alice.ack()
    assert len(carol.requests("ACK")) == 1
    alice.send_in_dialog("BYE")
    carol.answer(200, method="BYE")
    net.advance(40)
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"] and no_state_left(b2bua)


def test_2xx_crossing_the_cancel_of_a_losing_leg_is_acked_and_byed(net: Network, gw) -> None:
    b2bua, _, router, (alice, bob, carol, _) = gw
    router.decision = steps(((phone(BOB, 5062), phone(CAROL, 5063)), None))
    alice.call("100")
    bob.answer(180)
    carol.answer(200, SDP_B)
    bob.answer(200, SDP_B, index=0, method="INVITE")  # bob picked up as the CANCEL was on its way
    assert len(bob.requests("ACK")) == 1 and len(bob.requests("BYE")) == 1
    assert alice.finals() == [200] and carol.requests("BYE") == []


def test_r2_ring_time_over_moves_to_the_next_step(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, carol, _) = gw
    router.decision = steps(((phone(BOB, 5062),), 15.0), ((phone(CAROL, 5063),), None))
    alice.call("100")
    bob.answer(180)
    net.advance(14)
    assert carol.requests() == [] and bob.cancels() == []
    net.advance(1.5)
    assert len(bob.cancels()) == 1 and len(carol.requests("INVITE")) == 1
    reject_cancelled(bob, net)
    assert alice.finals() == []  # the caller hears nothing of the step given up
    carol.answer(200, SDP_B)
    assert alice.finals() == [200]
    assert [type(e).__name__ for e in recorder.setup] == ["CallStarted", "LegOffered", "LegOffered"]


def test_ring_time_over_on_the_last_step_is_408(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, _, _) = gw
    router.decision = steps(((phone(BOB, 5062),), 10.0))
    alice.call("100")
    bob.answer(180)
    net.advance(11)
    assert alice.finals() == [408] and len(bob.cancels()) == 1
    reject_cancelled(bob, net)
    net.advance(40)
    assert alice.finals() == [408] and recorder.kinds() == ["CallOffered", "CallFailed"] and no_state_left(b2bua)


def test_r3_employee_target_rings_every_registered_phone(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, carol, _) = gw
    for contact, at in ((f"sip:1001@{CAROL}:5063", net.now - 1), (f"sip:1001@{BOB}:5062", net.now)):
        bind(b2bua, "1001", contact, at)
    employee = Target.employee(7, "1001")
    router.decision = steps(((employee,), None))
    alice.call("100")
    assert len(bob.requests("INVITE")) == 1 and len(carol.requests("INVITE")) == 1
    assert bob.requests("INVITE")[0].request.uri == f"sip:1001@{BOB}:5062"  # the Contact as registered
    assert b2bua.busy_employees() == frozenset()  # ringing is not busy
    bob.answer(200, SDP_B)
    assert alice.finals() == [200] and len(carol.cancels()) == 1
    assert recorder.events[-1].target == employee  # type: ignore[attr-defined]
    assert b2bua.busy_employees() == frozenset({7})
    alice.ack()
    alice.send_in_dialog("BYE")
    bob.answer(200, method="BYE")
    assert b2bua.busy_employees() == frozenset()


def test_r3_employee_whose_phone_answers_busy_is_skipped_for_the_next_step(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, carol, _) = gw
    bind(b2bua, "1001", f"sip:1001@{BOB}:5062", net.now)
    router.decision = steps(((Target.employee(7, "1001"),), 20.0), ((phone(CAROL, 5063),), None))
    alice.call("100")
    bob.answer(486)
    assert alice.finals() == [] and len(carol.requests("INVITE")) == 1
    carol.answer(200, SDP_B)
    assert alice.finals() == [200]


def test_r3_the_last_busy_employee_is_what_the_caller_hears(net: Network, gw) -> None:
    b2bua, _, router, (alice, bob, _, _) = gw
    bind(b2bua, "1001", f"sip:1001@{BOB}:5062", net.now)
    router.decision = steps(((Target.employee(7, "1001"),), 20.0))
    alice.call("100")
    bob.answer(486)
    assert alice.finals() == [486]
    net.advance(40)
    assert no_state_left(b2bua)


def test_r3_employee_with_no_phone_registered_is_skipped(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, _, carol, _) = gw
    router.decision = steps(((Target.employee(7, "1007"),), 20.0), ((phone(CAROL, 5063),), None))
    alice.call("100")
    assert len(carol.requests("INVITE")) == 1
    assert [e.target for e in recorder.setup if isinstance(e, LegOffered)] == [phone(CAROL, 5063)]
    carol.answer(486)
    assert alice.finals() == [486]


def test_r3_only_employee_not_registered_is_480(net: Network, gw) -> None:
    b2bua, _, router, (alice, _, _, _) = gw
    router.decision = steps(((Target.employee(7, "1007"),), None))
    alice.call("100")
    assert alice.finals() == [480]
    net.advance(40)
    assert no_state_left(b2bua)


@pytest.mark.parametrize(("first", "second", "caller_hears"), [
    (486, 480, 486), (480, 486, 486), (408, 480, 480), (486, 603, 603), (503, 480, 480), (503, 500, 502),
    (404, 486, 404),  # among the callees' own 4xx the first received
])
def test_best_of_several_failures_is_what_the_caller_hears(net: Network, gw, first: int, second: int,
                                                           caller_hears: int) -> None:
    b2bua, _, router, (alice, bob, carol, _) = gw
    router.decision = steps(((phone(BOB, 5062), phone(CAROL, 5063)), None))
    alice.call("100")
    bob.answer(first)
    assert alice.finals() == []  # carol still rings
    carol.answer(second)
    assert alice.finals() == [caller_hears]
    net.advance(40)
    assert no_state_left(b2bua)


def test_step_failing_with_a_final_answer_does_not_hunt_on(net: Network, gw) -> None:
    _, _, router, (alice, bob, carol, dave) = gw
    router.decision = steps(((phone(BOB, 5062), phone(CAROL, 5063)), None), ((phone(DAVE, 5064),), None))
    alice.call("100")
    bob.answer(486)
    carol.answer(480)
    assert alice.finals() == [486] and dave.requests() == []


def test_step_where_everyone_is_unavailable_hunts_on(net: Network, gw) -> None:
    _, _, router, (alice, bob, carol, dave) = gw
    router.decision = steps(((phone(BOB, 5062), phone(CAROL, 5063)), None), ((phone(DAVE, 5064),), None))
    alice.call("100")
    bob.answer(480)
    carol.answer(503)
    assert alice.finals() == [] and len(dave.requests("INVITE")) == 1
    dave.answer(200, SDP_B)
    assert alice.finals() == [200]


def test_caller_cancelling_a_ring_all_cancels_every_leg(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, carol, _) = gw
    router.decision = steps(((phone(BOB, 5062), phone(CAROL, 5063)), None))
    alice.call("100")
    bob.answer(180)
    carol.answer(180)
    alice.cancel()
    assert alice.finals() == [487] and len(bob.cancels()) == 1 and len(carol.cancels()) == 1
    reject_cancelled(bob, net)
    assert b2bua.calls  # carol's INVITE has no final answer yet
    reject_cancelled(carol, net)
    net.advance(40)
    assert recorder.kinds() == ["CallOffered", "CallFailed"] and no_state_left(b2bua)


def test_timer_c_bounds_each_leg_of_a_ring_all_step(net: Network, gw) -> None:
    b2bua, _, router, (alice, bob, carol, _) = gw
    router.decision = steps(((phone(BOB, 5062), phone(CAROL, 5063)), None))
    alice.call("100")
    bob.answer(180)
    net.advance(100)
    carol.answer(180)  # carol's Timer C starts 100 s after bob's
    net.advance(85)
    assert len(bob.cancels()) == 1 and carol.cancels() == []
    reject_cancelled(bob, net)
    assert alice.finals() == []  # bob's 487 after Timer C is a 408; carol still rings
    net.advance(100)
    assert len(carol.cancels()) == 1
    reject_cancelled(carol, net)
    assert alice.finals() == [408]
    net.advance(40)
    assert no_state_left(b2bua)


def test_best_failure_of_nothing_is_480() -> None:
    assert best_failure([]) == (480, None)


def test_r3_the_employee_placing_a_call_is_busy_while_it_lasts(net: Network, gw) -> None:
    b2bua, recorder, router, (alice, bob, _, _) = gw
    decision = steps(((phone(BOB, 5062, employee_id=8),), None))
    router.decision = RouteDecision(decision.steps, None, decision.rule_ids, caller_employee_id=5)
    alice.call("1002")
    assert b2bua.busy_employees() == frozenset()
    bob.answer(200, SDP_B)
    assert b2bua.busy_employees() == frozenset({5, 8})
    alice.ack()
    alice.send_in_dialog("BYE")
    bob.answer(200, method="BYE")
    assert b2bua.busy_employees() == frozenset() and no_state_left(b2bua)


def test_a_2xx_for_a_call_already_released_is_acked_and_ended(net: Network, gw) -> None:
    """§13.2.2.4: a leg answering after its call is gone (a leg the call stopped counting on) is ACKed
    and hung up, not left retransmitting its 200 into the void."""
    b2bua, _, router, (alice, bob, _, _) = gw
    router.decision = steps(((phone(BOB, 5062),), None))
    alice.call("100")
    [call] = b2bua.calls
    b2bua.release(call)
    bob.answer(200, SDP_B)
    assert len(bob.requests("ACK")) == 1
    [bye] = bob.requests("BYE")
    assert bye.request.call_id == bob.requests("INVITE")[0].request.call_id
