"""Drives one `SipEndpoint` from the asyncio loop: bytes in, events to a handler, bytes out.

No SIP decisions here. One loop timer per endpoint, re-armed from `get_timer()` after every
input; the loop's monotonic clock is the `now` of the sans-IO core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import Event, Target
from gateway.transport.resolver import SipResolver

log = logging.getLogger(__name__)

EventHandler = Callable[[Event, float], None]
#: ``ignores(source_host, now)``: True for an address whose bytes are dropped before parsing (a
#: blocked flood source costs a lookup, not a parse).
SourceFilter = Callable[[str, float], bool]


def _ignore_nobody(host: str, now: float) -> bool:
    return False


class Sender(Protocol):
    """A transport as the runtime sees it."""

    def send(self, data: bytes, target: Target) -> None: ...

    def close_connection(self, target: Target) -> None: ...


class SipRuntime:
    """Glue between transports, the endpoint and the event handler (the B2BUA)."""

    __slots__ = ("endpoint", "handler", "loop", "senders", "streams", "resolver", "ignores", "_timer", "_deadline")

    def __init__(
        self,
        endpoint: SipEndpoint,
        handler: EventHandler,
        loop: asyncio.AbstractEventLoop,
        resolver: SipResolver | None = None,
    ) -> None:
        """`resolver` finds the addresses of host-name targets (default: the system's DNS servers)."""
        self.endpoint = endpoint
        self.handler = handler
        self.loop = loop
        self.senders: dict[str, Sender] = {}
        # The stream connections open now, by peer: the flows a registered phone is reached over.
        self.streams: set[Target] = set()
        self.resolver = resolver if resolver is not None else SipResolver()
        self.ignores: SourceFilter = _ignore_nobody
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None

    # -- input from transports -----------------------------------------------------------
    def datagram_received(self, data: bytes, source: Target) -> None:
        now = self.loop.time()
        if self.ignores(source[1], now):
            return
        self.endpoint.receive_datagram(data, source, now)
        self.pump(now)

    def stream_received(self, source: Target, data: bytes) -> None:
        now = self.loop.time()
        if self.ignores(source[1], now):
            sender = self.senders.get(source[0])
            if sender is not None:
                sender.close_connection(source)
            return
        self.endpoint.receive_stream(source, data, now)
        self.pump(now)

    def stream_buffered(self, source: Target) -> int:
        """Bytes of the connection `source` waiting to become a whole message (0: between messages)."""
        return self.endpoint.stream_buffered(source)

    def stream_opened(self, peer: Target) -> None:
        """A stream connection with `peer` is up (accepted or connected)."""
        self.streams.add(peer)

    def stream_closed(self, source: Target) -> None:
        self.streams.discard(source)
        self.endpoint.stream_closed(source)

    def is_connected(self, peer: Target) -> bool:
        """Whether a stream connection with `peer` is open now (never for datagram transports)."""
        return peer in self.streams

    def transport_error(self, target: Target) -> None:
        """A transport could not send to `target`; the endpoint fails what was waiting on it.

        Deferred to the next loop turn: a sender may find out inside `pump`, which must not re-enter.
        """
        self.loop.call_soon(self._report_transport_error, target)

    def _report_transport_error(self, target: Target) -> None:
        now = self.loop.time()
        self.endpoint.transport_error(target, now)
        self.pump(now)

    def run_in_sip(self, fn: Callable[[float], None]) -> None:
        """Run `fn(now)` on the next loop turn, then send what it queued and re-arm the timer.

        How work finished outside the SIP world (an async routing lookup) re-enters it: never
        inside `pump` (a caller may be in it), always followed by one, like `transport_error`.
        """
        self.loop.call_soon(self._run_in_sip, fn)

    def _run_in_sip(self, fn: Callable[[float], None]) -> None:
        now = self.loop.time()
        try:
            fn(now)
        except Exception:
            # As in `pump`: one bad call must not stop the gateway, but the bug must show.
            log.exception("run_in_sip: %r failed", fn)
        self.pump(now)

    # -- the pump --------------------------------------------------------------------------
    def pump(self, now: float) -> None:
        """Hand every pending event to the handler, send what is queued, re-arm the timer."""
        endpoint = self.endpoint
        handler = self.handler
        while (event := endpoint.next_event()) is not None:
            try:
                handler(event, now)
            except Exception:
                # One bad call must not stop the gateway; the error is a bug to fix, so say it loudly.
                log.exception("handler failed on %s", type(event).__name__)
        senders = self.senders
        for data, target in endpoint.datagrams_to_send():
            sender = senders.get(target[0])
            if sender is None:
                log.warning("no %s transport to send to %s", target[0], target)
                self.transport_error(target)
                continue
            sender.send(data, target)
        for target in endpoint.connections_to_close():
            sender = senders.get(target[0])
            if sender is not None:
                sender.close_connection(target)
        self._arm(endpoint.get_timer())

    def _arm(self, deadline: float | None) -> None:
        if deadline is None:
            return
        # A timer that fires early is harmless (it re-arms); only an earlier deadline needs a new one.
        if self._deadline is not None and self._deadline <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        now = self.loop.time()
        self.endpoint.handle_timer(now)
        self.pump(now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
