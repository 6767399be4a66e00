"""One side of a call: the dialog state the B2BUA keeps as UAS (leg A) or UAC (leg B).

RFC 3261 §12: Call-ID, tags, CSeq, remote target and route set; requests built here go to the
next hop per §12.2.1.1 (loose routing only, §16.12 strict routing is not supported).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from gateway.b2bua.flows import same_side_of_nat
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, Response
from gateway.sip.uri import is_plain_sip_uri, parse_uri

Target = tuple[str, str, int]
_DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


@functools.lru_cache(maxsize=4096)
def _is_ip_literal(host: str) -> bool:
    # A dotted quad that is no address ("999.1.1.1") is not one: the transport then refuses it (503).
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def uri_target(uri_text: str, default_transport: str) -> Target:
    """Where a SIP URI points: transport param or the default, host, port.

    A host name without a port gets port 0: the transport then looks up its SRV records
    (RFC 3263 §4.2, `gateway.transport.resolver`), which an explicit port would forbid.
    """
    uri = parse_uri(uri_text)
    transport = (uri.params.get("transport") or default_transport).lower()
    if uri.port is None and uri.host and not _is_ip_literal(uri.host):
        return (transport, uri.host, 0)
    return (transport, uri.host, uri.port or _DEFAULT_PORTS.get(transport, 5060))


def contact_target(message: Request | Response) -> str | None:
    """The URI of `message`'s Contact when it can be a dialog's remote target (§12.1.2, §12.2), else None:
    no Contact, a malformed one, ``*``, or a URI with no host to send requests to (tel:)."""
    value = message.get("Contact")
    if value is None:
        return None
    try:
        uri = parse_name_addr(value).uri
        if is_plain_sip_uri(uri):  # the usual form: a sip URI with a host, checked by one regex
            return uri
        return uri if parse_uri(uri).host else None
    except RemoteProtocolError:
        return None


def learn_remote(leg: Leg, response: Response) -> bool:
    """§12.1.2: the remote tag, target and route set (reversed Record-Route) come from the response.

    False when it names no dialog or no usable target (`contact_target`): the INVITE's target is kept.
    """
    tag = response.to_tag
    if tag is None:
        return False
    leg.remote_tag = tag
    leg.route_set = tuple(reversed(response.get_all("Record-Route")))
    target = contact_target(response)
    if target is None:
        return False
    leg.refresh_target(target)
    return True


def remember_sdp(leg: Leg, message: Request | Response) -> None:
    """Keep `message`'s SDP body as the last session description `leg`'s party sent."""
    if message.body and (message.get("Content-Type") or "").lower().startswith("application/sdp"):
        leg.sdp = message.body


def strip_tag(header_value: str) -> str:
    """A From/To value without its tag parameter, to reuse as the dialog's local or remote URI."""
    close = header_value.rfind(">")
    if close < 0:
        # addr-spec form: parameters after the URI belong to the header (§20.10); parse properly.
        name_addr = parse_name_addr(header_value)
        name_addr.params.pop("tag", None)
        return name_addr.to_str()
    head, tail = header_value[: close + 1], header_value[close + 1 :]
    if "tag" not in tail.lower():
        return header_value.strip()
    kept = [p for p in tail.split(";") if p.strip() and p.split("=", 1)[0].strip().lower() != "tag"]
    return head.strip() + "".join(f";{p.strip()}" for p in kept)


def request_user(uri: str) -> str | None:
    """The user part of a Request-URI, unescaped; a fast path for the common plain "sip:user@host"."""
    if uri.startswith("sip:"):
        at = uri.find("@", 4)
        if at > 4:
            user = uri[4:at]
            if "%" not in user and ";" not in user and ":" not in user and "?" not in user:
                return user
        elif at < 0 and "?" not in uri:
            return None
    return parse_uri(uri).user


class Leg:
    """Dialog state of one side.

    `peer`, when set, is the flow this leg is reached over and overrides the remote target as the
    next hop: a TCP peer is reached back on the connection it called or registered from, a NATed
    phone at the address its REGISTER came from. A stream flow that `flow_open` says is closed is
    skipped (the remote target is used, RFC 3261 §18.1.1). `flow_host`, when set, is the host the
    phone named in its registered Contact: the flow is kept only while the remote target stays
    behind it (see `refresh_target`).
    """

    __slots__ = (
        "call_id", "local_tag", "remote_tag", "local_uri", "remote_uri", "remote_target",
        "route_set", "transport", "peer", "local_cseq", "remote_cseq", "contact", "pending_ack", "last_ack",
        "flow_host", "flow_open", "_hop_key", "_hop", "sdp",
    )

    def __init__(
        self,
        call_id: str,
        local_tag: str,
        local_uri: str,
        remote_uri: str,
        remote_target: str,
        transport: str,
        contact: str,
        remote_tag: str | None = None,
        route_set: tuple[str, ...] = (),
        peer: Target | None = None,
        local_cseq: int = 0,
        remote_cseq: int | None = None,
        flow_host: str | None = None,
        flow_open: Callable[[Target], bool] | None = None,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.transport = transport
        self.peer = peer
        self.local_cseq = local_cseq
        # §12.2.2: the highest CSeq the remote side used so far; None until its first request.
        self.remote_cseq = remote_cseq
        self.contact = contact
        # An ACK for a 2xx this leg is waiting for (leg B), and the last ACK sent (for 2xx retransmits).
        self.pending_ack: Request | None = None
        self.last_ack: Request | None = None
        self.flow_host = flow_host
        self.flow_open = flow_open
        self._hop_key: str | None = None
        self._hop: Target | None = None
        # The last session description this leg's party sent (offer or answer): what a transfer
        # offers the next party this one is joined to (see `gateway.b2bua.transfer`).
        self.sdp = b""

    def next_hop(self) -> Target:
        """The flow while it is usable, else §12.2.1.1 / §8.1.2: the first Route if any, else the remote target."""
        peer = self.peer
        if peer is not None and (peer[0] == "udp" or self.flow_open is None or self.flow_open(peer)):
            return peer
        key = self.route_set[0] if self.route_set else self.remote_target
        if key is not self._hop_key or self._hop is None:
            # Resolved once per remote target / route set change, not per request.
            self._hop = uri_target(_route_uri(key) if self.route_set else key, self.transport)
            self._hop_key = key
        return self._hop

    def refresh_target(self, uri: str) -> None:
        """A new remote target (§12.1.2 from a 2xx, §12.2 from a target refresh). A registration's
        flow is dropped when the target moves to another host than the phone's: the new target is
        someone else, not the phone behind that NAT or connection."""
        self.remote_target = uri
        if self.flow_host is None or self.peer is None:
            return
        try:
            host = parse_uri(uri).host
        except RemoteProtocolError:
            host = ""
        if not same_side_of_nat(host, self.flow_host, self.peer):
            self.peer = self.flow_host = None

    def create_request(self, method: str, cseq: int | None = None) -> Request:
        """A request within this dialog (§12.2.1.1); ACK and CANCEL reuse `cseq` instead of a new one."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        to = f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri
        headers = [("Route", route) for route in self.route_set]
        headers += [
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if method in ("INVITE", "UPDATE"):
            headers.append(("Contact", self.contact))
        return Request(method, self.remote_target, headers)


def _route_uri(route: str) -> str:
    return parse_name_addr(route).uri
