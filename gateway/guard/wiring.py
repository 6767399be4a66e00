"""Connects a `SourceGuard` to the SIP machinery: the one place its decisions turn into effects.

- the runtime asks `ignores` before parsing a datagram (a blocked flood costs a dict lookup);
- the endpoint asks `screen` for each new request before it makes a transaction for it;
- the digest gates report every failed attempt to `auth_failed`.
"""

from __future__ import annotations

import logging

from gateway.guard.policy import ADMIT, DROP, Block, SourceGuard
from gateway.sip.endpoint import SCREEN_DROP
from gateway.sip.events import Target
from gateway.sip.message import Request

log = logging.getLogger(__name__)


class GuardWiring:
    """The adapters the runtime, the endpoint and the digest gates call."""

    __slots__ = ("guard",)

    def __init__(self, guard: SourceGuard) -> None:
        self.guard = guard

    def ignores(self, host: str, now: float) -> bool:
        """`SipRuntime.ignores`: drop bytes from `host` unparsed."""
        return self.guard.ignores(host, now)

    def screen(self, request: Request, source: Target, now: float) -> int | None:
        """`SipEndpoint.screen`: None admits, `SCREEN_DROP` drops, a status refuses."""
        decision = self.guard.screen(request.method, source[1], request.get("User-Agent"), now)
        if decision.action == ADMIT:
            return None
        if decision.new_block is not None:
            _announce(decision.new_block, f"{request.method} from {source[1]}")
        return SCREEN_DROP if decision.action == DROP else decision.status

    def auth_failed(self, host: str, now: float) -> None:
        """`DigestGate.on_failure`: one failed digest attempt from `host`."""
        block = self.guard.auth_failed(host, now)
        if block is not None:
            _announce(block, f"{self.guard.settings.auth_failures} failed digest attempts from {host}")


def _announce(block: Block, what: str) -> None:
    # One line per block, not per request: a flood must not flood the log too.
    log.warning("guard: %s blocked for %.0f s (rule %s, after %s)", block.address, block.until - block.since,
                block.rule, what)
