"""Messages to a host name that wait for its DNS lookup: one lookup per name, a bounded queue.

Used by the datagram adapter; the stream adapter resolves inside its connect task. A failed
lookup is a transport error for the name Target the caller used, so the transactions waiting on
it end with a 503 at once (RFC 3261 §18.4, RFC 3263 §4.3) instead of a 408 after Timer B/F.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.sip.events import Target
from gateway.transport.resolver import LookupFailed
from gateway.transport.runtime import SipRuntime

log = logging.getLogger(__name__)

# Per name: a lookup takes at most the DNS timeout, and SIP retransmits meanwhile; more than this
# many waiting messages for one name is a flood, not calls.
MAX_WAITING = 64

Deliver = Callable[[bytes, Target, tuple[Target, ...]], None]


class LookupQueue:
    """Holds messages per name Target until `runtime.resolver` answers, then hands them to `deliver`
    with the addresses found (or reports `runtime.transport_error(target)`)."""

    def __init__(self, runtime: SipRuntime, deliver: Deliver, limit: int = MAX_WAITING) -> None:
        self.runtime = runtime
        self.deliver = deliver
        self.limit = limit
        self.waiting: dict[Target, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    def add(self, data: bytes, target: Target) -> None:
        """Queue `data` for `target`, starting its lookup unless one is under way."""
        queued = self.waiting.get(target)
        if queued is not None:
            if len(queued) < self.limit:
                queued.append(data)
            else:
                self.dropped += 1
                log.warning("dns: %s is still resolving, dropping a message (%d queued)", target[1], len(queued))
            return
        self.waiting[target] = [data]
        task = self.runtime.loop.create_task(self._resolve(target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, target: Target) -> None:
        try:
            addresses = await self.runtime.resolver.resolve(target)
        except LookupFailed:
            self.waiting.pop(target, None)
            self.runtime.transport_error(target)
            return
        for data in self.waiting.pop(target, []):
            self.deliver(data, target, addresses)

    def close(self) -> None:
        """Give up every lookup under way (the adapter is closing)."""
        for task in list(self._tasks):
            task.cancel()
        self.waiting.clear()
