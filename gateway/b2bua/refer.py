"""REFER as the gateway reads it and the NOTIFYs it answers with (RFC 3515, RFC 3891, RFC 6665).

Pure helpers for `gateway.b2bua.transfer`: what a Refer-To asks for (a user to call, or with
`Replaces` a dialog to take over), and the in-dialog NOTIFY of the REFER's implicit subscription,
whose `message/sipfrag` body is the status line of the transfer's progress.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from gateway.b2bua.leg import Leg
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request
from gateway.sip.status import reason_phrase

# RFC 6665 §4.1.3: how long the implicit subscription lasts unless terminated first.
SUBSCRIPTION_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Replaces:
    """RFC 3891: the dialog an attended transfer takes over. Its tags are named from the point of
    view of the party that would receive the INVITE with Replaces; the gateway matches either way."""

    call_id: str
    to_tag: str
    from_tag: str


@dataclass(frozen=True, slots=True)
class ReferTo:
    """What a REFER asks for: call `user` (blind) or, with `replaces`, join the dialog it names."""

    uri: str
    user: str
    replaces: Replaces | None = None


def read_refer_to(request: Request) -> ReferTo:
    """The REFER's Refer-To; RemoteProtocolError (400, saying what is wrong) when it is unusable."""
    values = request.get_all("Refer-To")
    if len(values) != 1:
        raise RemoteProtocolError("Bad Request (a REFER carries exactly one Refer-To)", 400)
    try:
        uri = parse_name_addr(values[0]).uri
    except RemoteProtocolError as error:
        raise RemoteProtocolError(f"Bad Request (Refer-To is not a URI: {error})", 400) from error
    plain, _, header_part = uri.partition("?")
    user = _uri_user(plain)
    if not user:
        raise RemoteProtocolError("Bad Request (Refer-To names no user or number to call)", 400)
    headers = {name.lower(): value for name, value in urllib.parse.parse_qsl(header_part, keep_blank_values=True)}
    replaces = _read_replaces(headers["replaces"]) if "replaces" in headers else None
    return ReferTo(plain, user, replaces)


def _uri_user(uri: str) -> str | None:
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "tel":
        return urllib.parse.unquote(rest.split(";", 1)[0]) or None
    if scheme.lower() not in ("sip", "sips") or "@" not in rest:
        return None
    return urllib.parse.unquote(rest.split("@", 1)[0].split(";", 1)[0]) or None


def _read_replaces(value: str) -> Replaces:
    call_id, *params = (part.strip() for part in value.split(";"))
    tags = dict(param.partition("=")[::2] for param in params)
    to_tag, from_tag = tags.get("to-tag", ""), tags.get("from-tag", "")
    if not call_id or not to_tag or not from_tag:
        raise RemoteProtocolError("Bad Request (Replaces needs a Call-ID, a to-tag and a from-tag)", 400)
    return Replaces(call_id, to_tag, from_tag)


def sipfrag(status: int) -> bytes:
    """The `message/sipfrag` body of a NOTIFY: the status line of the transfer's progress."""
    return f"SIP/2.0 {status} {reason_phrase(status)}\r\n".encode()


def notify(leg: Leg, status: int, *, final: bool, refer_cseq: int) -> Request:
    """A NOTIFY of the REFER's subscription on `leg`: `status` so far, the subscription ended when `final`."""
    request = leg.create_request("NOTIFY")
    state = "terminated;reason=noresource" if final else f"active;expires={SUBSCRIPTION_SECONDS}"
    request.headers += [
        ("Contact", leg.contact),  # RFC 6665 §4.1.2.2 / §7.1: NOTIFY carries the notifier's Contact
        ("Event", f"refer;id={refer_cseq}"),  # RFC 3515 §2.4.6: the id is the REFER's CSeq number
        ("Subscription-State", state),
        ("Content-Type", "message/sipfrag;version=2.0"),
    ]
    request.body = sipfrag(status)
    return request
