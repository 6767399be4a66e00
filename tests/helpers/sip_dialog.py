"""Dialogs (RFC 3261 §12) for the tests' own phones and callers: the state two UAs share between
INVITE and BYE. The gateway's dialogs are its legs (`gateway.b2bua.leg`): one implementation in the
product; this one stands for the UAs around it in sans-IO tests.

A `Dialog` builds in-dialog requests (§12.2.1.1: CSeq, Route set, loose and strict routing)
and checks incoming ones (§12.2.2: CSeq order, target refresh). It adds no Via and no
Max-Forwards: the endpoint does that when the request is sent.
"""

from __future__ import annotations

import random

from gateway.sip.errors import LocalProtocolError, RemoteProtocolError
from gateway.sip.headers import NameAddr, parse_name_addr
from gateway.sip.message import Request, Response
from gateway.sip.uri import parse_uri

# §12.2.1.2 / RFC 3311 §5.1: requests whose Contact replaces the remote target.
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})
# Requests that must carry our Contact (§8.1.1.8, RFC 6665 §7.1, RFC 3515 §2.4.1).
_CONTACT_METHODS = TARGET_REFRESH_METHODS | {"SUBSCRIBE", "REFER", "NOTIFY"}


def _contact_uri(message: Request | Response) -> str | None:
    value = message.get("Contact")
    if value is None:
        return None
    return parse_name_addr(value).uri


def _party(value: NameAddr) -> str:
    """A From/To value without its tag: the dialog adds its own."""
    text = f'"{value.display}" <{value.uri}>' if value.display else f"<{value.uri}>"
    for name, param in value.params.items():
        if name != "tag":
            text += f";{name}" if param is None else f";{name}={param}"
    return text


def _is_loose(route: str) -> bool:
    return "lr" in parse_uri(parse_name_addr(route).uri).params


class Dialog:
    """One dialog's state (§12.1): identity, parties, targets, route set and sequence numbers."""

    __slots__ = ("call_id", "local_tag", "remote_tag", "local_uri", "remote_uri", "local_target",
                 "remote_target", "route_set", "local_cseq", "remote_cseq", "confirmed", "is_uac",
                 "_local_party", "_remote_party")

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_party: NameAddr,
        remote_party: NameAddr,
        local_target: str | None,
        remote_target: str,
        route_set: list[str],
        local_cseq: int,
        remote_cseq: int | None,
        confirmed: bool,
        is_uac: bool,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_party.uri
        self.remote_uri = remote_party.uri
        self.local_target = local_target
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.confirmed = confirmed
        self.is_uac = is_uac
        self._local_party = _party(local_party)
        self._remote_party = _party(remote_party)

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag), the dialog ID of §12."""
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The UAC side (§12.1.2): our request and a 1xx-with-tag or 2xx response to it."""
        remote_tag = response.to_tag
        local_tag = request.from_tag
        if not remote_tag or not local_tag:
            raise RemoteProtocolError("a dialog needs both From and To tags", 400)
        target = _contact_uri(response)
        if target is None:
            raise RemoteProtocolError("dialog-creating response without Contact", 400)
        return cls(
            call_id=request.call_id, local_tag=local_tag, remote_tag=remote_tag,
            local_party=request.from_, remote_party=response.to,
            local_target=_contact_uri(request), remote_target=target,
            # §12.1.2: the UAC's route set is the Record-Route of the response, reversed.
            route_set=list(reversed(response.get_all("Record-Route"))),
            local_cseq=request.cseq[0], remote_cseq=None,
            confirmed=200 <= response.status < 300, is_uac=True,
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, local_target: str | None = None,
                 local_cseq: int | None = None) -> Dialog:
        """The UAS side (§12.1.1): their request, the tag we put in To, our Contact URI."""
        remote_tag = request.from_tag
        if not remote_tag:
            raise RemoteProtocolError("dialog-creating request without From tag", 400)
        target = _contact_uri(request)
        if target is None:
            raise RemoteProtocolError("dialog-creating request without Contact", 400)
        return cls(
            call_id=request.call_id, local_tag=local_tag, remote_tag=remote_tag,
            local_party=request.to, remote_party=request.from_,
            local_target=local_target, remote_target=target,
            route_set=list(request.get_all("Record-Route")),
            # §12.1.1 leaves our sequence space empty; any start below 2**31 is allowed.
            local_cseq=local_cseq if local_cseq is not None else random.randint(1, 1 << 20),
            remote_cseq=request.cseq[0], confirmed=False, is_uac=False,
        )

    # -- outgoing requests (§12.2.1) ----------------------------------------------------------
    def next_hop(self) -> str:
        """The URI the request goes to: the first route when there is a route set, else the target."""
        if self.route_set:
            return parse_name_addr(self.route_set[0]).uri
        return self.remote_target

    def _routing(self) -> tuple[str, list[str]]:
        """(Request-URI, Route values) per §12.2.1.1."""
        routes = self.route_set
        if not routes:
            return self.remote_target, []
        if _is_loose(routes[0]):
            return self.remote_target, list(routes)
        # Strict router: it takes the Request-URI as next hop; the real target rides last in Route.
        first = parse_uri(parse_name_addr(routes[0]).uri)
        first.params.pop("method", None)
        first.headers.clear()
        return first.to_str(), [*routes[1:], f"<{self.remote_target}>"]

    def _build(self, method: str, cseq: int, body: bytes,
               headers: list[tuple[str, str]] | None) -> Request:
        uri, routes = self._routing()
        fields: list[tuple[str, str]] = [("Route", route) for route in routes]
        fields += [
            ("From", f"{self._local_party};tag={self.local_tag}"),
            ("To", f"{self._remote_party};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        extra = headers or []
        wants_contact = method in _CONTACT_METHODS and all(name != "Contact" for name, _ in extra)
        if self.local_target is not None and wants_contact:
            fields.append(("Contact", f"<{self.local_target}>"))
        fields += extra
        return Request(method, uri, fields, body)

    def create_request(self, method: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None) -> Request:
        """A new in-dialog request; the local CSeq goes up by one (§12.2.1.1)."""
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} reuses its INVITE's CSeq; use create_ack or the endpoint")
        self.local_cseq += 1
        return self._build(method, self.local_cseq, body, headers)

    def create_ack(self, invite_cseq: int, body: bytes = b"",
                   headers: list[tuple[str, str]] | None = None) -> Request:
        """The ACK of a 2xx (§13.2.2.4): the INVITE's CSeq number, this dialog's routing."""
        return self._build("ACK", invite_cseq, body, headers)

    # -- incoming -----------------------------------------------------------------------------
    def receive_request(self, request: Request) -> None:
        """Check and apply an in-dialog request (§12.2.2).

        Raises RemoteProtocolError(500) when its CSeq is lower than the last one seen.
        """
        if request.method in ("ACK", "CANCEL"):
            return  # both carry the CSeq number of the INVITE they belong to
        number = request.cseq[0]
        if self.remote_cseq is not None and number < self.remote_cseq:
            raise RemoteProtocolError(f"CSeq {number} is lower than {self.remote_cseq}", 500)
        self.remote_cseq = number
        if request.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request)
            if target is not None:
                self.remote_target = target

    def receive_response(self, response: Response) -> None:
        """Apply a response to one of our requests in this dialog (UAC side).

        A 2xx confirms an early dialog and fixes its route set (§13.2.2.4, §12.1.2); a 2xx to a
        target refresh request replaces the remote target (§12.2.1.2).
        """
        status = response.status
        if not 200 <= status < 300:
            return
        method = response.cseq[1]
        if not self.confirmed and self.is_uac and method == "INVITE":
            self.route_set = list(reversed(response.get_all("Record-Route")))
            self.confirmed = True
        if method in TARGET_REFRESH_METHODS:
            target = _contact_uri(response)
            if target is not None:
                self.remote_target = target

    def confirm(self) -> None:
        """The UAS side sent its 2xx: the dialog is no longer early."""
        self.confirmed = True

    def __repr__(self) -> str:
        state = "confirmed" if self.confirmed else "early"
        return f"<Dialog {self.call_id} {self.local_tag}/{self.remote_tag} {state}>"
