"""The static route table of the configuration file (issue #2; numbers and queues replace it later).

Rules are tried in file order; the first whose regex matches the Request-URI user wins. `match` is a
regex *search* on the user part, so anchors mean what they mean: `^555` routes 5551, `^1\\d{3}$` routes
exactly four digits starting with 1, and an unanchored `1\\d{3}` matches anywhere in the user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.config import StaticRoute
from gateway.routing.decision import RouteDecision
from gateway.routing.targets import RingStep, Target

REGISTERED = "registered"
RULE_NO_MATCH = "static.no_match"
RULE_NOT_REGISTERED = "static.not_registered"
RULE_NO_USER = "static.no_user"


def decide(
    user: str | None,
    routes: Sequence[StaticRoute],
    bindings: Mapping[str, Sequence[str]],
) -> RouteDecision:
    """Route the Request-URI `user` through `routes`; `bindings` maps a registered user to contacts.

    Registered contacts come most recent first; each is a hunting target in that order.
    """
    if not user:
        return RouteDecision((), 404, (RULE_NO_USER,))
    for route in routes:
        if route.pattern.search(user) is None:
            continue
        if route.target != REGISTERED:
            step = RingStep((Target.sip_uri(route.target),), None, (route.rule_id,))
            return RouteDecision((step,), None, (route.rule_id,))
        contacts = tuple(bindings.get(user, ()))
        if contacts:
            steps = tuple(RingStep((Target.phone(contact, extension=user),), None, (route.rule_id,)) for contact in contacts)
            return RouteDecision(steps, None, (route.rule_id,))
        # RFC 3261 §21.4.18: the user exists but has no phone online right now.
        return RouteDecision((), 480, (route.rule_id, RULE_NOT_REGISTERED))
    return RouteDecision((), 404, (RULE_NO_MATCH,))
