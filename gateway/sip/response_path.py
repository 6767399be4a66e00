"""Where the responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4), and the Via stamping of a
received request that records where it really came from (§18.2.1)."""

from __future__ import annotations

import ipaddress

from gateway.sip.events import Target
from gateway.sip.headers import Via
from gateway.sip.message import Request

DEFAULT_PORT = 5060


def response_target(via: Via, source: Target) -> Target:
    """Where the responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4)."""
    if source[0] != "udp":
        return source  # reliable: back over the connection the request came in on
    maddr = _ip_literal(via.params.get("maddr"))
    if maddr:
        return ("udp", maddr, via.port or DEFAULT_PORT)
    params = via.params
    rport = params.get("rport")
    # A peer-written rport outside 1-65535 is no port at all: fall back to the Via's (§18.2.2).
    port = via.port or DEFAULT_PORT
    if rport is not None and rport.isdigit() and len(rport) <= 5 and 0 < int(rport) < 65536:
        port = int(rport)
    return ("udp", params.get("received") or via.host, port)


def stamp_via(request: Request, source: Target) -> None:
    """received / rport on the top Via (§18.2.1, RFC 3581 §4)."""
    via = request.top_via
    params = via.params
    wants_rport = "rport" in params and params["rport"] is None
    if via.host == source[1] and not wants_rport:
        return
    params["received"] = source[1]
    if wants_rport:
        params["rport"] = str(source[2])
    headers = request.headers
    for index, (name, _) in enumerate(headers):
        if name == "Via":
            # The cached parsed Via is the object just changed, so views stay consistent.
            headers[index] = ("Via", via.to_str())
            break


def _ip_literal(host: str | None) -> str | None:
    """`host` without brackets when it is an IP address, else None.

    A name would be resolved synchronously by the UDP adapter's sendto (a peer choosing a slow
    DNS zone stalls every call), and this core cannot resolve (RFC 3263 is not implemented).
    """
    if not host:
        return None
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host
