"""The static route table of the configuration file as a `Router`: it decides at once, with no I/O.

A `registered` route rings the contacts registered for the dialled user one after another (one
ring step per contact, most recent first), as the B2BUA always hunted them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gateway.config import StaticRoute
from gateway.registrar.bindings import BindingStore
from gateway.routing.decision import explain
from gateway.routing.request import Deliver, RouteRequest
from gateway.routing.static import decide

log = logging.getLogger(__name__)


class StaticRouter:
    """Routes by the Request-URI user through `routes`, with the bindings of `store`; delivers at once."""

    __slots__ = ("routes", "store")

    def __init__(self, routes: Sequence[StaticRoute], store: BindingStore) -> None:
        self.routes = tuple(routes)
        self.store = store

    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        user = request.request_user
        contacts = self.store.contacts(user, request.at) if user else []
        decision = decide(user, self.routes, {user: contacts} if user else {})
        if log.isEnabledFor(logging.DEBUG):
            log.debug("route %s: %s", user, explain(decision))
        deliver(decision, request.at)
