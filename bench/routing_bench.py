"""Routing micro-benchmark: decisions per CPU second for the bench's CRM number. Run: ``python -m bench.routing_bench``.

The inputs are those of `make bench`'s CRM rows (bench/crm_seed.py): a number whose queue group of 101
members rings *evenly*, everyone with a registered phone (a set of live users, as the live router
takes from the registrar), a few of them on a call, a new caller (no responsible to ring first). After
each decision the first member offered is marked offered now, as the B2BUA's leg offer does, so every
call sees another *evenly* order. Two figures: `route` alone, and `route` plus the call log's routing
record (rule ids, notes and the explanation lines) as the journal builds it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

from gateway.calls.journal_records import RoutedCall
from gateway.crm_bridge.linking.ringing import RULE_QUEUE_GROUP, RingPlan
from gateway.routing import (
    EmployeeSpec,
    MemberSpec,
    NumberSpec,
    Presence,
    QueueGroupSpec,
    RouteDecision,
    RouteRequest,
    RoutingInputs,
    Strategy,
    route,
)

MEMBERS = 101
FIRST_EXTENSION = 2000
BUSY = frozenset({5, 17, 42, 77})  # employee ids on a call
NUMBER = NumberSpec(1, "+4930555000", "DE", queue_group_id=1, route_known_to_responsible=True)


def bench_inputs() -> RoutingInputs:
    """The CRM rows' call: employees 1..101 with extensions 2000.., all in one *evenly* group."""
    employees = {i: EmployeeSpec(i, str(FIRST_EXTENSION + i - 1)) for i in range(1, MEMBERS + 1)}
    members = tuple(MemberSpec(i, i) for i in employees)
    group = QueueGroupSpec(1, "Bench", Strategy.EVENLY, 20.0, members)
    registered = frozenset(spec.extension for spec in employees.values() if spec.extension)
    plan = RingPlan(None, None, tuple(employees), (RULE_QUEUE_GROUP,))
    request = RouteRequest(
        call_id="bench-0", request_user=NUMBER.e164, to_user=NUMBER.e164, caller_uri="sip:+4915210000001@trunk.bench",
        caller_user="+4915210000001", caller_display=None, asserted=None, privacy=None,
        source=("udp", "127.0.0.1", 5090), trusted=True, authenticated_user=None, at=0.0,
    )
    return RoutingInputs(request=request, number=NUMBER, ring_plan=plan, employees=employees, groups={1: group},
                         presence=Presence(registered=registered, busy=BUSY), last_offer={})


def _with_record(inputs: RoutingInputs) -> RouteDecision:
    decision = route(inputs)
    RoutedCall(inputs.request.call_id, "inbound", 1, NUMBER.e164, "+4915210000001", "+4915210000001",
               decision).routing_record()
    return decision


def decisions_per_second(decide: Callable[[RoutingInputs], RouteDecision], seconds: float) -> float:
    """Decisions per CPU second of this process (CPU time: the figure holds on a shared machine)."""
    inputs = bench_inputs()
    last_offer: dict[int, float] = {}
    inputs = replace(inputs, last_offer=last_offer)
    count = 0
    started = time.process_time()
    while (elapsed := time.process_time() - started) < seconds:
        for _ in range(50):
            decision = decide(inputs)
            first = decision.steps[0].targets[0].employee_id
            assert first is not None
            count += 1
            last_offer[first] = float(count)
    return count / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routing_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per figure (default 3)")
    args = parser.parse_args(argv)
    plain = decisions_per_second(route, args.seconds)
    recorded = decisions_per_second(_with_record, args.seconds)
    print(f"route: {plain:,.0f} decisions/s ({1e6 / plain:.0f} µs each)")
    print(f"route + routing_record: {recorded:,.0f} decisions/s ({1e6 / recorded:.0f} µs each)")


if __name__ == "__main__":
    main()
