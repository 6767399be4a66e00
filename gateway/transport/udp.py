"""asyncio UDP adapter (RFC 3261 §18; `rport` of RFC 3581 is stamped by the endpoint)."""

from __future__ import annotations

import asyncio
import logging
import socket

from gateway.sip.events import Target
from gateway.transport.pending import LookupQueue
from gateway.transport.resolver import is_ip_literal
from gateway.transport.runtime import SipRuntime

log = logging.getLogger(__name__)
# Room for bursts under load: the kernel default (~200 kB) drops datagrams at a few thousand calls/s.
RECEIVE_BUFFER = 4 * 1024 * 1024


class UdpTransport(asyncio.DatagramProtocol):
    """One bound UDP socket feeding a `SipRuntime`."""

    def __init__(self, runtime: SipRuntime) -> None:
        self.runtime = runtime
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] = ("", 0)
        self.family = socket.AF_INET
        self.lookups = LookupQueue(runtime, self._send_resolved)

    @classmethod
    async def bind(cls, runtime: SipRuntime, host: str, port: int) -> UdpTransport:
        """Bind `host:port` (0 picks a free port) and register as the runtime's "udp" sender."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        _, protocol = await runtime.loop.create_datagram_endpoint(
            lambda: cls(runtime), local_addr=(host, port), family=family
        )
        runtime.senders["udp"] = protocol
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
        self.address = sock.getsockname()[:2]
        self.family = sock.family

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.runtime.datagram_received(data, ("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like are not reported to the transactions (RFC 3261 §18.4
        # allows it): on this unconnected socket the kernel delivers them late or not at all, and
        # without the destination, so no transaction can be matched. Timer B/F (408) covers UDP.
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, target: Target) -> None:
        if not is_ip_literal(target[1]):
            self._send_to_name(data, target)
            return
        if not 0 < target[2] < 65536:
            # asyncio treats the OverflowError of such a sendto as fatal and closes the socket.
            log.warning("udp: not sending to impossible port %s", target)
            self.runtime.transport_error(target)
            return
        if self.transport is not None:
            self.transport.sendto(data, (target[1], target[2]))

    def _send_to_name(self, data: bytes, target: Target) -> None:
        """RFC 3263: a host name is sent to once resolved; sent at once on a cache hit, else queued."""
        addresses = self.runtime.resolver.cached(target)
        if addresses is None:
            self.lookups.add(data, target)
        else:
            self._send_resolved(data, target, addresses)

    def _send_resolved(self, data: bytes, target: Target, addresses: tuple[Target, ...]) -> None:
        # The first address this socket can reach (an IPv4 socket cannot send to AAAA records);
        # UDP learns nothing from a send, so there is no failover to the next one (Timer B/F covers it).
        ipv6 = self.family == socket.AF_INET6
        for address in addresses:
            if (":" in address[1]) == ipv6 and 0 < address[2] < 65536:
                if self.transport is not None:
                    self.transport.sendto(data, (address[1], address[2]))
                return
        log.info("udp: no %s address for %s among %s", "IPv6" if ipv6 else "IPv4", target[1], addresses)
        self.runtime.transport_error(target)

    def close_connection(self, target: Target) -> None:
        """UDP has no connections."""

    def close(self) -> None:
        self.lookups.close()
        if self.transport is not None:
            self.transport.close()
