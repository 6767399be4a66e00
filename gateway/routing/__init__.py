"""Routing: pure functions from a call's inputs (number, queue groups, presence, the CRM's ring plan)
to a decision with rule ids. `route` runs the named steps of `steps.STEPS`; static routes stay a fallback."""

from gateway.routing.decision import RouteDecision, explain
from gateway.routing.explanation import explain_lines
from gateway.routing.model import (
    EmployeeSpec,
    MemberSpec,
    NoAnswer,
    NoAnswerKind,
    NumberSpec,
    Presence,
    QueueGroupSpec,
    RoutingInputs,
    StaticTable,
    Strategy,
)
from gateway.routing.numbers import CallerIdentity, caller_identity, dialled_candidates, pick_number
from gateway.routing.request import Deliver, Router, RouteRequest
from gateway.routing.static import decide
from gateway.routing.steps import STEPS, route
from gateway.routing.targets import RingStep, Target, TargetKind

__all__ = [
    "STEPS",
    "CallerIdentity",
    "Deliver",
    "EmployeeSpec",
    "MemberSpec",
    "NoAnswer",
    "NoAnswerKind",
    "NumberSpec",
    "Presence",
    "QueueGroupSpec",
    "RingStep",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "RoutingInputs",
    "StaticTable",
    "Strategy",
    "Target",
    "TargetKind",
    "caller_identity",
    "decide",
    "dialled_candidates",
    "explain",
    "explain_lines",
    "pick_number",
    "route",
]
