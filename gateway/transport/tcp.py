"""asyncio TCP adapter (RFC 3261 §18.3): framing is the endpoint's; this moves bytes.

Connections are keyed by the peer's address ("tcp", ip, port): responses and in-dialog requests to
a peer go back over the connection it opened, and so do requests to a phone that registered over it
(the runtime knows which connections are open, see `SipRuntime.is_connected`). A connection we open
to a host name is also found under that name, for sending only: what the peer sends over it comes
from its address. A target without a live connection gets a new one; when that connection cannot
be made (refused, or no answer within `connect_timeout` from any address), the runtime hears of it
(`transport_error`) so the transactions waiting on it end at once with a 503 (RFC 3261 §18.4,
§8.1.3.1) instead of after Timer B/F.

What a peer can hold is bounded (`TcpLimits`): accepted connections in all and per source address
(one past a cap is closed at once), a connection idle either way too long, a message that takes
too long to arrive once begun (a header trickled byte by byte). One loop timer sweeps them all. The
size of a message is the framer's to bound (`SipEndpoint(max_stream_message=...)`). Counters are in
`stats` (keys in `STATS_KEYS`), read by the metrics layer at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from gateway.sip.events import Target
from gateway.tcp_limits import TcpLimits
from gateway.transport.pending import MAX_WAITING
from gateway.transport.resolver import LookupFailed, is_ip_literal
from gateway.transport.runtime import SipRuntime

log = logging.getLogger(__name__)

# A blackholed address would otherwise hold the connect for the kernel's SYN retries (~127 s), far
# past Timer B (32 s): the next SRV target must get its turn while the transaction is still alive.
CONNECT_TIMEOUT = 5.0
STATS_KEYS = ("open", "refused.total_cap", "refused.source_cap", "closed.idle", "closed.slow_message")
# The sweep runs a few times per shortest limit, so a limit is enforced within a quarter of itself.
_SWEEPS_PER_LIMIT = 4
_SWEEP_BOUNDS = (0.05, 1.0)


class _Connection(asyncio.Protocol):
    """One TCP connection, reachable under its peer's address and, when we opened it to a host
    name, under that name too (so the next message to the name reuses it)."""

    def __init__(self, owner: TcpTransport, name: Target | None = None, accepted: bool = False) -> None:
        self.owner = owner
        self.name = name
        self.accepted = accepted  # opened by the peer: counted against the caps
        self.admitted = False
        self.last_activity = owner.runtime.loop.time()
        # When the first byte of the message being received arrived; None between messages.
        self.message_started: float | None = None
        # What the peer's messages are attributed to: always its address, never a name, so Via
        # `received`/`rport` (RFC 3261 §18.2.1, RFC 3581 §4) and trunk trust see an IP and a real port.
        self.source: Target | None = None
        self.keys: tuple[Target, ...] = ()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the methods but not the class: cast, never isinstance.
        self.transport = stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if not self.owner.admit(self, peer[0]):
            stream.abort()
            return
        self.source = ("tcp", peer[0], peer[1])
        self.keys = (self.source,) if self.name is None or self.name == self.source else (self.source, self.name)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for key in self.keys:
            self.owner.connections[key] = self
            self.owner.runtime.stream_opened(key)

    def data_received(self, data: bytes) -> None:
        source = self.source
        if source is None:
            return  # refused, closing
        runtime = self.owner.runtime
        before = runtime.stream_buffered(source)
        runtime.stream_received(source, data)
        after = runtime.stream_buffered(source)
        self.last_activity = now = runtime.loop.time()
        if after == 0:
            self.message_started = None
        elif self.message_started is None or before + len(data) > after:
            self.message_started = now  # bytes were consumed: what is left began in this chunk

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.release(self)
        for key in self.keys:
            if self.owner.connections.get(key) is self:
                del self.owner.connections[key]
                self.owner.runtime.stream_closed(key)


class TcpTransport:
    """A listening TCP socket plus the connections to and from peers."""

    def __init__(
        self,
        runtime: SipRuntime,
        connect_timeout: float = CONNECT_TIMEOUT,
        limits: TcpLimits | None = None,
        stats: dict[str, int] | None = None,
    ) -> None:
        """`connect_timeout` bounds each connect attempt in seconds (one per address of a name);
        `stats` is where the counters go (a dict the caller's metrics read; keys `STATS_KEYS`)."""
        self.runtime = runtime
        self.connect_timeout = connect_timeout
        self.limits = limits if limits is not None else TcpLimits()
        self.stats = stats if stats is not None else {}
        for key in STATS_KEYS:
            self.stats.setdefault(key, 0)
        self.connections: dict[Target, _Connection] = {}
        self._live: set[_Connection] = set()
        self._accepted_from: dict[str, int] = {}  # admitted accepted connections by source IP
        self._accepted = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._pending: dict[Target, list[bytes]] = {}
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    @classmethod
    async def bind(
        cls,
        runtime: SipRuntime,
        host: str,
        port: int,
        connect_timeout: float = CONNECT_TIMEOUT,
        limits: TcpLimits | None = None,
        stats: dict[str, int] | None = None,
    ) -> TcpTransport:
        """Listen on `host:port` (0 picks a free port) and register as the runtime's "tcp" sender."""
        self = cls(runtime, connect_timeout, limits, stats)
        self._server = await runtime.loop.create_server(
            lambda: _Connection(self, accepted=True), host, port, reuse_address=True
        )
        self.address = self._server.sockets[0].getsockname()[:2]
        runtime.senders["tcp"] = self
        self._schedule_sweep()
        return self

    # -- limits ------------------------------------------------------------------------------
    def admit(self, connection: _Connection, ip: str) -> bool:
        """Whether a new connection may stay open; one past a cap is counted and refused."""
        if connection.accepted:
            if self._accepted >= self.limits.max_connections:
                self.stats["refused.total_cap"] += 1
                return False
            if self._accepted_from.get(ip, 0) >= self.limits.max_connections_per_source:
                self.stats["refused.source_cap"] += 1
                return False
            self._accepted += 1
            self._accepted_from[ip] = self._accepted_from.get(ip, 0) + 1
        connection.admitted = True
        self._live.add(connection)
        self.stats["open"] += 1
        return True

    def release(self, connection: _Connection) -> None:
        """A connection closed: its place under the caps is free again."""
        if not connection.admitted:
            return
        connection.admitted = False
        self._live.discard(connection)
        self.stats["open"] -= 1
        if connection.accepted:
            self._accepted -= 1
            ip = connection.source[1] if connection.source is not None else ""
            left = self._accepted_from.get(ip, 1) - 1
            if left > 0:
                self._accepted_from[ip] = left
            else:
                self._accepted_from.pop(ip, None)

    def _schedule_sweep(self) -> None:
        shortest = min(self.limits.idle_seconds, self.limits.message_receive_seconds)
        low, high = _SWEEP_BOUNDS
        interval = max(low, min(high, shortest / _SWEEPS_PER_LIMIT))
        self._sweeper = self.runtime.loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle too long or receiving one message too long."""
        now = self.runtime.loop.time()
        idle_since = now - self.limits.idle_seconds
        slow_since = now - self.limits.message_receive_seconds
        for connection in list(self._live):
            transport = connection.transport
            if transport is None or transport.is_closing():
                continue
            if connection.message_started is not None and connection.message_started < slow_since:
                reason = "closed.slow_message"
            elif connection.last_activity < idle_since:
                reason = "closed.idle"
            else:
                continue
            self.stats[reason] += 1
            log.info("tcp: %s from %s", reason.replace("_", " ").replace(".", " "), connection.source)
            transport.abort()  # nothing to flush: an idle or stalled peer is owed nothing
        self._schedule_sweep()

    def send(self, data: bytes, target: Target) -> None:
        connection = self.connections.get(target)
        if connection is not None and connection.transport is not None:
            if not connection.transport.is_closing():
                connection.transport.write(data)
                connection.last_activity = self.runtime.loop.time()
                return
            # A dead connection swallows writes silently: forget it and connect again (§18.1.1), which
            # fails fast (and is reported) when the peer is gone for good.
            del self.connections[target]
            self.runtime.stream_closed(target)
        pending = self._pending.get(target)
        if pending is not None:
            if len(pending) < MAX_WAITING:
                pending.append(data)
            return
        self._pending[target] = [data]
        self.runtime.loop.create_task(self._connect(target))

    async def _connect(self, target: Target) -> None:
        try:
            connection = await self._open(target)
        except (OSError, ValueError, LookupFailed) as exc:
            # ValueError: a host name the IDNA codec refuses (UnicodeError), taken from a peer's Contact.
            log.info("tcp connect to %s:%s failed: %s", target[1], target[2], exc)
            self._pending.pop(target, None)
            self.runtime.transport_error(target)
            return
        for data in self._pending.pop(target, []):
            assert connection.transport is not None
            connection.transport.write(data)

    async def _open(self, target: Target) -> _Connection:
        """A connection to `target`, reachable under it even when its host is a name (RFC 3263 §4.2:
        the addresses are tried in SRV order, the next one when a connect fails or times out)."""
        if is_ip_literal(target[1]):
            addresses: tuple[Target, ...] = (target,)
        else:
            addresses = self.runtime.resolver.cached(target) or await self.runtime.resolver.resolve(target)
        error: OSError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, connection = await self.runtime.loop.create_connection(
                        lambda: _Connection(self, target), address[1], address[2]
                    )
                return connection
            except TimeoutError:
                error = TimeoutError(f"no answer from {address[1]}:{address[2]} within {self.connect_timeout} s")
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def close_connection(self, target: Target) -> None:
        connection = self.connections.get(target)
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.close()
