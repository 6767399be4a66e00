"""Where leg B's INVITE goes for a target URI: the Request-URI, the transport and the next hop.

A registered Contact is called as it is, over the registration's flow when it has one (see
`flows`); a trunk URI without a user gets the dialled number as its user part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from gateway.b2bua.call_context import Destination, Target
from gateway.b2bua.flows import registration_flow
from gateway.b2bua.leg import uri_target
from gateway.registrar.bindings import BindingStore
from gateway.sip.uri import SipUri, parse_uri

_PLAIN_USER = re.compile(r"[A-Za-z0-9.+_-]+")


class Destinations:
    """Resolves target URIs with the bindings of `store`; parsed target URIs are cached."""

    __slots__ = ("store", "nat_contacts", "connected", "_targets")

    def __init__(self, store: BindingStore, nat_contacts: str, connected: Callable[[Target], bool]) -> None:
        self.store = store
        self.nat_contacts = nat_contacts
        self.connected = connected
        self._targets: dict[str, tuple[SipUri, str, Target]] = {}

    def resolve(self, target: str, callee: str) -> Destination:
        """Where to send the INVITE for a routing target URI and the dialled user (`callee`)."""
        cached = self._targets.get(target)
        if cached is None:
            uri = parse_uri(target)
            transport = (uri.params.get("transport") or "udp").lower()
            cached = (uri, transport, uri_target(target, transport))
            if len(self._targets) < 10_000:
                self._targets[target] = cached
        uri, transport, hop = cached
        binding = self.store.get(callee, target) if callee else None
        if binding is not None:
            # A registered Contact is the Request-URI as it is (§10.3, §16.5); only the hop may change.
            flow = registration_flow(binding.source, hop, self.nat_contacts, self.connected)
            if flow is not None:
                return Destination(target, flow[0], flow, hop[1])
            return Destination(target, transport, hop)
        if uri.user is not None or not callee:
            return Destination(target, transport, hop)
        if _PLAIN_USER.fullmatch(callee):
            # A trunk target keeps the dialled number: "sip:host:port" becomes "sip:number@host:port".
            return Destination(f"{uri.scheme}:{callee}@{target.split(':', 1)[1]}", transport, hop)
        with_user = replace(uri, user=callee)
        return Destination(with_user.to_str(), transport, hop)
