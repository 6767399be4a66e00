"""The facts of an inbound INVITE that routing may use, read once from the request (`RouteRequest`)."""

from __future__ import annotations

from gateway.b2bua.leg import request_user
from gateway.routing.request import RouteRequest, Source
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request


def read_route_request(
    request: Request, source: Source, trusted: bool, authenticated_user: str | None, now: float,
    trunk_id: int | None = None,
) -> RouteRequest:
    """`request`'s routing facts; `authenticated_user` is the digest user that authorised it, if any.

    A From or To the gateway cannot parse does not fail the call (it never needed them parsed
    before routing read them): the raw From value stands for the caller, and the users are None.
    """
    try:
        caller_display, caller_uri = display_and_uri(request.get("From") or "")
        caller_user = _user(caller_uri)
    except RemoteProtocolError:
        caller_uri, caller_display, caller_user = request.get("From") or "", None, None
    try:
        to_user = _user(display_and_uri(request.get("To") or "")[1])
    except RemoteProtocolError:
        to_user = None
    asserted = request.get("P-Asserted-Identity")
    return RouteRequest(
        call_id=request.call_id,
        request_user=request_user(request.uri),
        to_user=to_user,
        caller_uri=caller_uri,
        caller_user=caller_user,
        caller_display=caller_display,
        asserted=_asserted(asserted) if asserted is not None else None,
        privacy=request.get("Privacy"),
        source=source,
        trusted=trusted,
        authenticated_user=authenticated_user,
        at=now,
        trunk_id=trunk_id,
        called_party_user=_first_user(request.get("P-Called-Party-ID")) if trusted else None,
        diversion_user=_first_user(request.get("Diversion")) if trusted else None,
    )


def display_and_uri(value: str) -> tuple[str | None, str]:
    """The display name and URI of a From/To value; the usual ``"Name" <uri>;tag=...`` and ``<uri>``
    forms without a full parse (one per call on the hot path), anything else by `parse_name_addr`."""
    lt = value.find("<")
    gt = value.find(">", lt + 1)
    if 0 <= lt < gt:
        head = value[:lt].strip()
        if not head:
            return None, value[lt + 1 : gt].strip()
        inner = head[1:-1]
        if len(head) > 1 and head[0] == '"' and head[-1] == '"' and '"' not in inner and "\\" not in inner:
            return inner, value[lt + 1 : gt].strip()
    name_addr = parse_name_addr(value)
    return name_addr.display, name_addr.uri


def _user(uri: str) -> str | None:
    if uri.startswith("tel:"):
        # RFC 3966: the number is everything up to the first parameter.
        return uri[4:].split(";", 1)[0] or None
    if not uri.startswith(("sip:", "sips:")):
        return None
    return request_user(uri)


def _first_user(value: str | None) -> str | None:
    """The user of the first name-addr of a P-Called-Party-ID (RFC 3455) or Diversion (RFC 5806) value."""
    if not value:
        return None
    close = value.find(">")
    first = value[: close + 1] if close >= 0 else value.split(",", 1)[0].split(";", 1)[0]
    try:
        return _user(display_and_uri(first)[1])
    except RemoteProtocolError:
        return None


def _asserted(value: str) -> str | None:
    # RFC 3325 §9.1: one or two name-addrs (a sip and a tel URI); the first names the caller.
    close = value.find(">")
    first = value[: close + 1] if close >= 0 else value.split(",", 1)[0]
    try:
        return parse_name_addr(first).uri
    except RemoteProtocolError:
        return None
