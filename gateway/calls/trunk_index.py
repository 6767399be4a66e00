"""The SIP side's view of the database's trunks (SPEC T1): who an INVITE comes from, what to answer a
trunk's challenge with, and the digest HA1 of a PBX that registers with its trunk's credentials.

Built from each routing-directory snapshot; host names of trunks trusted by source address are
resolved off the SIP path (`resolve_names`) so the per-INVITE check is a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping

from gateway.b2bua.ports import TrunkSide
from gateway.sip.auth import compute_ha1
from gateway.trunks.model import TrunkSpec, TrunkTrust

log = logging.getLogger(__name__)

#: Asked for a trunk we register to: its id when `(host, port)` is where its registrar answered from.
RegisteredSource = Callable[[str, int], "int | None"]
#: The SIP side's resolver (`SipResolver.resolve`): (transport, host, port) → address targets.
Resolve = Callable[[tuple[str, str, int]], Awaitable[tuple[tuple[str, str, int], ...]]]


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def _addresses(trunk: TrunkSpec, resolve: Resolve | None) -> list[str]:
    if resolve is not None:
        try:
            return [found[1] for found in await resolve((trunk.transport, trunk.host, trunk.port))]
        except Exception as error:  # noqa: BLE001 - any resolver failure falls back to the system's
            log.debug("trunk %r: %s", trunk.name, error)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(trunk.host, trunk.port, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def _no_registration(host: str, port: int) -> int | None:
    return None


class TrunkIndex(TrunkSide):
    """Implements the B2BUA's `TrunkSide` over one set of trunks."""

    def __init__(
        self, trunks: Mapping[int, TrunkSpec], realm: str, registered_source: RegisteredSource = _no_registration
    ) -> None:
        self.trunks = {trunk_id: trunk for trunk_id, trunk in trunks.items() if trunk.enabled}
        self.realm = realm
        self.registered_source = registered_source
        # (ip, port) → trunk id; port None matches any port of that address.
        self._sources: dict[tuple[str, int | None], int] = {}
        self._logins: dict[str, TrunkSpec] = {}
        self._ha1: dict[tuple[str, str], str] = {}
        for trunk in self.trunks.values():
            if trunk.trust is TrunkTrust.SOURCE:
                address = _literal(trunk.host)
                if address is not None:
                    self._add_source(address, trunk)
            elif trunk.trust is TrunkTrust.DIGEST and trunk.username and trunk.secret:
                self._logins[trunk.username] = trunk

    def _add_source(self, address: str, trunk: TrunkSpec) -> None:
        # A PBX sends from ephemeral ports as often as from its listening one: the address is the trust.
        self._sources.setdefault((address, None), trunk.id)

    async def resolve_names(self, resolve: Resolve | None = None) -> None:
        """Look up the host names of trunks trusted by source address with the SIP side's resolver
        (`resolve`; the names in /etc/hosts, which DNS does not know, through the system's). A name
        that does not resolve is logged, and its trunk's calls are challenged until it does."""
        for trunk in self.trunks.values():
            if trunk.trust is not TrunkTrust.SOURCE or _literal(trunk.host) is not None:
                continue
            addresses = await _addresses(trunk, resolve)
            if not addresses:
                log.warning("trunk %r: cannot resolve %s; its calls are challenged until it resolves",
                            trunk.name, trunk.host)
            for address in addresses:
                self._add_source(address, trunk)

    # -- TrunkSide ------------------------------------------------------------------------------
    def by_source(self, host: str, port: int) -> int | None:
        found = self._sources.get((host, None))
        if found is not None:
            return found
        return self.registered_source(host, port)

    def by_login(self, username: str) -> int | None:
        trunk = self._logins.get(username)
        return trunk.id if trunk is not None else None

    def credentials(self, trunk_id: int) -> tuple[str, str] | None:
        trunk = self.trunks.get(trunk_id)
        if trunk is None or not trunk.username or trunk.secret is None:
            return None
        return trunk.username, trunk.secret

    # -- the digest gate's lookup for PBXs that register with their trunk's credentials ------------
    def ha1(self, username: str, algorithm: str) -> str | None:
        trunk = self._logins.get(username)
        if trunk is None or trunk.secret is None:
            return None
        key = (username, algorithm)
        cached = self._ha1.get(key)
        if cached is None:
            cached = self._ha1[key] = compute_ha1(algorithm, username, self.realm, trunk.secret)
        return cached


class CurrentTrunks(TrunkSide):
    """The B2BUA's `TrunkSide` that always asks the directory's latest index (it is rebuilt on reload)."""

    def __init__(self, current: Callable[[], TrunkIndex]) -> None:
        self.current = current

    def by_source(self, host: str, port: int) -> int | None:
        return self.current().by_source(host, port)

    def by_login(self, username: str) -> int | None:
        return self.current().by_login(username)

    def credentials(self, trunk_id: int) -> tuple[str, str] | None:
        return self.current().credentials(trunk_id)
