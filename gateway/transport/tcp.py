"""asyncio TCP adapter (RFC 3261 §18.3): framing is the endpoint's; this moves bytes.

Connections are keyed by the peer's address ("tcp", ip, port): responses and in-dialog requests to
a peer go back over the connection it opened, and so do requests to a phone that registered over it
(the runtime knows which connections are open, see `SipRuntime.is_connected`). A connection we open
to a host name is also found under that name, for sending only: what the peer sends over it comes
from its address. A target without a live connection gets a new one; when that connection cannot
be made (refused, or no answer within `connect_timeout` from any address), the runtime hears of it
(`transport_error`) so the transactions waiting on it end at once with a 503 (RFC 3261 §18.4,
§8.1.3.1) instead of after Timer B/F.
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

# A blackholed address would otherwise hold the connect for the kernel's SYN retries (~127 s), far
# past Timer B (32 s): the next SRV target must get its turn while the transaction is still alive.
CONNECT_TIMEOUT = 5.0


class _Connection(asyncio.Protocol):
    """One TCP connection, reachable under its peer's address and, when we opened it to a host
    name, under that name too (so the next message to the name reuses it)."""

    def __init__(self, owner: TcpTransport, name: Target | None = None) -> None:
        self.owner = owner
        self.name = name
        # What the peer's messages are attributed to: always its address, never a name, so Via
        # `received`/`rport` (RFC 3261 §18.2.1, RFC 3581 §4) and trunk trust see an IP and a real port.
        self.source: Target | None = None
        self.keys: tuple[Target, ...] = ()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.source = ("tcp", peer[0], peer[1])
        self.keys = (self.source,) if self.name is None or self.name == self.source else (self.source, self.name)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for key in self.keys:
            self.owner.connections[key] = self
            self.owner.runtime.stream_opened(key)

    def data_received(self, data: bytes) -> None:
        assert self.source is not None
        self.owner.runtime.stream_received(self.source, data)

    def connection_lost(self, exc: Exception | None) -> None:
        for key in self.keys:
            if self.owner.connections.get(key) is self:
                del self.owner.connections[key]
                self.owner.runtime.stream_closed(key)


class TcpTransport:
    """A listening TCP socket plus the connections to and from peers."""

    def __init__(self, runtime: SipRuntime, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """`connect_timeout` bounds each connect attempt in seconds (one per address of a name)."""
        self.runtime = runtime
        self.connect_timeout = connect_timeout
        self.connections: dict[Target, _Connection] = {}
        self._pending: dict[Target, list[bytes]] = {}
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    @classmethod
    async def bind(
        cls, runtime: SipRuntime, host: str, port: int, connect_timeout: float = CONNECT_TIMEOUT
    ) -> TcpTransport:
        """Listen on `host:port` (0 picks a free port) and register as the runtime's "tcp" sender."""
        self = cls(runtime, connect_timeout)
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
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.close()
