"""Routing: pure functions from a dialled user and the current tables to a decision with rule ids."""

from gateway.routing.decision import RouteDecision, explain
from gateway.routing.static import decide

__all__ = ["RouteDecision", "decide", "explain"]
