"""Where a SIP next hop named by a host name is (RFC 3263 §4.2), looked up without blocking the loop.

A `Target` whose host is an IP literal never comes here. For a host name, the port tells what the
URI said: `PORT_NOT_GIVEN` (0, see `gateway.b2bua.leg.uri_target`) means the URI named no port, so
SRV records of ``_sip._udp.NAME`` / ``_sip._tcp.NAME`` decide the hosts and ports (RFC 2782 order),
and without SRV records the name's own A/AAAA records with the transport's default port do
(§4.2, last paragraph). A URI that named a port gets the A/AAAA records only.

NAPTR (§4.1) is not looked up: the transport is the URI's (its transport parameter or the route's
default), never chosen by DNS. Failover across SRV records is left to the adapter (TCP tries the
next address when a connect fails; UDP sends to the first).

Answers are cached for their TTL (capped), failures for a short time, in a bounded LRU.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver

from gateway.sip.events import Target

log = logging.getLogger(__name__)

PORT_NOT_GIVEN = 0
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# §4.2: the SRV service and protocol labels per transport (TLS is "_sips._tcp").
_SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
DEFAULT_TIMEOUT = 2.0
MAX_TTL = 3600.0  # a record with a huge TTL still gets re-checked hourly
NEGATIVE_TTL = 5.0
MAX_ENTRIES = 1024

# A host name's last label is never all digits (RFC 1123 §2.1) and never holds a colon: a host like
# that was meant as an address, and when it is not a valid one ("999.1.1.1") DNS is not asked.
_ADDRESS_LIKE = re.compile(r".*:.*|(?:.*\.)?[0-9]+\.?")

# Every datagram asks, about a handful of hosts: remember the answers (bounded: hosts come from peers).
_LITERAL_MEMO: dict[str, bool] = {}
_LITERAL_MEMO_SIZE = 4096


def is_ip_literal(host: str) -> bool:
    """Whether `host` is a valid IPv4 or IPv6 address (as a Target carries it: IPv6 without brackets)."""
    known = _LITERAL_MEMO.get(host)
    if known is None:
        if len(_LITERAL_MEMO) >= _LITERAL_MEMO_SIZE:
            _LITERAL_MEMO.clear()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            known = False
        else:
            known = True
        _LITERAL_MEMO[host] = known
    return known


class LookupFailed(Exception):
    """A host name has no usable address: NXDOMAIN, no records, a server failure or a timeout."""


def srv_order(records: Sequence[tuple[int, int, int, str]], rng: random.Random) -> list[tuple[int, int, int, str]]:
    """(priority, weight, port, host) records in the order RFC 2782 says to try them.

    Lowest priority first; within one priority a weighted random draw, zero weights first in the
    running sum so they are picked only rarely (RFC 2782 "Usage rules").
    """
    ordered: list[tuple[int, int, int, str]] = []
    for priority in sorted({record[0] for record in records}):
        group = sorted((r for r in records if r[0] == priority), key=lambda r: r[1] != 0)
        while group:
            total = sum(r[1] for r in group)
            threshold = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record[1]
                if running >= threshold:
                    ordered.append(group.pop(index))
                    break
    return ordered


class SipResolver:
    """Resolves name Targets to address Targets (same transport, IP host) with a TTL cache.

    `nameservers` are (ip, port) pairs; empty means the system's /etc/resolv.conf. `timeout` bounds
    one whole resolution (SRV, then A/AAAA) in seconds.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        timeout: float = DEFAULT_TIMEOUT,
        *,
        max_entries: int = MAX_ENTRIES,
        negative_ttl: float = NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.nameservers = tuple(nameservers)
        self.timeout = timeout
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.rng = rng or random.Random()
        self.lookups = 0  # resolutions that went to DNS (cache misses)
        self._cache: OrderedDict[Target, tuple[float, tuple[Target, ...]]] = OrderedDict()
        self._dns: dns.asyncresolver.Resolver | None = None

    def cached(self, target: Target) -> tuple[Target, ...] | None:
        """The cached addresses of `target`, best first; () when it is known not to resolve; None
        when DNS must be asked (`resolve`)."""
        entry = self._cache.get(target)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._cache[target]
            return None
        self._cache.move_to_end(target)
        return entry[1]

    async def resolve(self, target: Target) -> tuple[Target, ...]:
        """The addresses of `target` (never empty), from the cache or DNS; raises `LookupFailed`."""
        addresses = self.cached(target)
        if addresses is None:
            self.lookups += 1
            try:
                async with asyncio.timeout(self.timeout):
                    addresses, ttl = await self._lookup(target)
            except TimeoutError:
                addresses, ttl = (), self.negative_ttl
                log.info("dns: no answer for %s within %.1f s", target[1], self.timeout)
            except LookupFailed as failure:
                addresses, ttl = (), self.negative_ttl
                log.info("dns: %s", failure)
            except dns.exception.DNSException as error:
                addresses, ttl = (), self.negative_ttl
                log.info("dns: %s: %s", target[1], error)
            self._store(target, addresses, ttl)
        if not addresses:
            raise LookupFailed(f"{target[1]} does not resolve")
        return addresses

    def _store(self, target: Target, addresses: tuple[Target, ...], ttl: float) -> None:
        self._cache[target] = (self.clock() + min(ttl, MAX_TTL), addresses)
        self._cache.move_to_end(target)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _lookup(self, target: Target) -> tuple[tuple[Target, ...], float]:
        transport, name, port = target
        if not name:
            raise LookupFailed("a target without a host")
        if _ADDRESS_LIKE.fullmatch(name):
            raise LookupFailed(f"{name} is neither a valid IP address nor a host name")
        if port == PORT_NOT_GIVEN:
            found = await self._srv(transport, name)
            if found is not None:
                return found
            port = DEFAULT_PORTS.get(transport, 5060)
        hosts, ttl = await self._addresses(name)
        if not hosts:
            raise LookupFailed(f"{name} has no A or AAAA record")
        return tuple((transport, host, port) for host in hosts), ttl

    async def _srv(self, transport: str, name: str) -> tuple[tuple[Target, ...], float] | None:
        """SRV-ordered addresses, or None when the name has no SRV records for this transport."""
        prefix = _SRV_PREFIX.get(transport)
        if prefix is None:
            return None
        try:
            records, ttl = await self._query(f"{prefix}.{name}", "SRV")
        except dns.resolver.NXDOMAIN:
            return None  # the SRV owner name not existing says nothing about NAME itself
        if not records:
            return None
        entries = [(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True)) for r in records]
        if len(entries) == 1 and entries[0][3] in ("", "."):
            # RFC 2782: a target of "." means the service is decidedly not available at this domain.
            raise LookupFailed(f"{prefix}.{name}: SRV says the service is not offered")
        ordered = srv_order(entries, self.rng)
        results = await asyncio.gather(
            *(self._addresses(host) for _, _, _, host in ordered), return_exceptions=True
        )
        addresses: list[Target] = []
        for (_, _, port, host), result in zip(ordered, results, strict=True):
            if isinstance(result, BaseException):
                log.info("dns: SRV target %s of %s: %s", host, name, result)
                continue
            hosts, host_ttl = result
            ttl = min(ttl, host_ttl)
            addresses.extend((transport, ip, port) for ip in hosts)
        if not addresses:
            raise LookupFailed(f"no SRV target of {prefix}.{name} has an address")
        return tuple(addresses), ttl

    async def _addresses(self, name: str) -> tuple[list[str], float]:
        """A then AAAA addresses of `name` (queried at once) and the smaller TTL."""
        results = await asyncio.gather(self._query(name, "A"), self._query(name, "AAAA"), return_exceptions=True)
        hosts: list[str] = []
        ttl = MAX_TTL
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
                continue
            records, record_ttl = result
            if records:
                hosts.extend(record.address for record in records)
                ttl = min(ttl, record_ttl)
        if not hosts and errors:
            error = errors[0]
            if isinstance(error, dns.resolver.NXDOMAIN):
                raise LookupFailed(f"{name} does not exist (NXDOMAIN)")
            if isinstance(error, dns.exception.DNSException):
                raise LookupFailed(f"{name}: {error}")
            raise error
        return hosts, ttl

    async def _query(self, name: str, rdtype: str) -> tuple[list[dns.rdata.Rdata], float]:
        """The records of one question (empty when the name has none of that type) and their TTL."""
        answer = await self._resolver().resolve(name, rdtype, raise_on_no_answer=False, search=False)
        if answer.rrset is None:
            return [], MAX_TTL
        return list(answer.rrset), float(answer.rrset.ttl)

    def _resolver(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=not self.nameservers)
            except dns.resolver.NoResolverConfiguration as error:
                raise LookupFailed(f"no DNS server configured ({error}): set [sip] dns_servers") from None
            if self.nameservers:
                resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in self.nameservers]
            resolver.lifetime = self.timeout
            resolver.timeout = self.timeout
            # dnspython's own cache is left off: this class caches whole resolutions, failures included.
            self._dns = resolver
        return self._dns
