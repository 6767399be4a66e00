"""Routing: pure functions from a dialled user and the current tables to a decision with rule ids."""

from gateway.routing.decision import RouteDecision, explain
from gateway.routing.request import Deliver, Router, RouteRequest
from gateway.routing.static import decide
from gateway.routing.targets import RingStep, Target, TargetKind

__all__ = ["Deliver", "RingStep", "RouteDecision", "RouteRequest", "Router", "Target", "TargetKind", "decide", "explain"]
