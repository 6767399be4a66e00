"""asyncio TCP adapter (RFC 3261 §18.3): framing is the endpoint's; this moves bytes.

Connections are keyed by the peer's (host, port): responses and in-dialog requests to a peer go
back over the connection it opened, and so do requests to a phone that registered over it (the
runtime knows which connections are open, see `SipRuntime.is_connected`); a target without a live
connection gets a new one. When that
connection cannot be made, the runtime hears of it (`transport_error`) so the transactions waiting
on it end at once with a 503 (RFC 3261 §18.4, §8.1.3.1) instead of after Timer B/F.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from gateway.sip.events import Target
from gateway.transport.pending import MAX_WAITING
from gateway.transport.resolver import LookupFailed, is_ip_literal
from gateway.transport.runtime import SipRuntime

log = logging.getLogger(__name__)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, key: Target | None = None) -> None:
        self.owner = owner
        self.key = key
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.key is None:
            peer = transport.get_extra_info("peername")
            self.key = ("tcp", peer[0], peer[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner.connections[self.key] = self
        self.owner.runtime.stream_opened(self.key)

    def data_received(self, data: bytes) -> None:
        assert self.key is not None
        self.owner.runtime.stream_received(self.key, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.key is not None and self.owner.connections.get(self.key) is self:
            del self.owner.connections[self.key]
            self.owner.runtime.stream_closed(self.key)


class TcpTransport:
    """A listening TCP socket plus the connections to and from peers."""

    def __init__(self, runtime: SipRuntime) -> None:
        self.runtime = runtime
        self.connections: dict[Target, _Connection] = {}
        self._pending: dict[Target, list[bytes]] = {}
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    @classmethod
    async def bind(cls, runtime: SipRuntime, host: str, port: int) -> TcpTransport:
        """Listen on `host:port` (0 picks a free port) and register as the runtime's "tcp" sender."""
        self = cls(runtime)
        self._server = await runtime.loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)
        self.address = self._server.sockets[0].getsockname()[:2]
        runtime.senders["tcp"] = self
        return self

    def send(self, data: bytes, target: Target) -> None:
        connection = self.connections.get(target)
        if connection is not None and connection.transport is not None:
            if not connection.transport.is_closing():
                connection.transport.write(data)
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
        """A connection to `target`, keyed by it even when its host is a name (RFC 3263 §4.2: the
        addresses are tried in SRV order, the next one when a connect fails)."""
        if is_ip_literal(target[1]):
            addresses: tuple[Target, ...] = (target,)
        else:
            addresses = self.runtime.resolver.cached(target) or await self.runtime.resolver.resolve(target)
        error: OSError | None = None
        for address in addresses:
            try:
                _, connection = await self.runtime.loop.create_connection(
                    lambda: _Connection(self, target), address[1], address[2]
                )
                return connection
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def close_connection(self, target: Target) -> None:
        connection = self.connections.get(target)
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.close()
