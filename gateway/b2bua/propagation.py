"""The only ways SIP crosses from one leg to the other. Everything not named here stays on its leg.

What crosses:
- the body and its describing headers (SDP passes through unchanged);
- the method of in-dialog requests listed in `RELAYED_IN_DIALOG`;
- the caller's identity (From URI and display name) onto leg B's INVITE, under a new tag;
- the status of responses, through the failure table for failures.
- RFC 4028 session-timer headers, as `session_timer` decides (Min-SE of a 422 here).

The failure table (what the caller hears when leg B fails) and the hunting policy (which failures
move on to the next target) are routing policy: `gateway.routing.failure`.
"""

from __future__ import annotations

from gateway.routing.failure import (
    HUNT_ON,
    TIMEOUT,
    UNAVAILABLE,
    UNREACHABLE,
    Failure,
    best_failure,
    failure_status,
)
from gateway.sip.message import Message, Request, Response, make_response

__all__ = [
    "ALLOW_IN_DIALOG", "ALLOW_OUT_OF_DIALOG", "BODY_HEADERS", "DIALOG_ONLY", "HUNT_ON", "RELAYED_IN_DIALOG",
    "TIMEOUT", "UNAVAILABLE", "UNREACHABLE", "Failure", "best_failure", "copy_body", "failure_status",
    "relay_response",
]

BODY_HEADERS = ("Content-Type", "Content-Disposition", "Content-Encoding", "Content-Language", "MIME-Version")
RELAYED_IN_DIALOG = frozenset({"INVITE", "UPDATE", "INFO", "OPTIONS", "MESSAGE"})
# Requests that only exist inside a dialog: outside one (no To tag, or a dialog we do not know) they
# are answered 481, never 405 (§15.1.2, §12.2.2; RFC 3311 §5.2; RFC 6086 §4.2.1).
DIALOG_ONLY = frozenset({"BYE", "UPDATE", "INFO"})
# §20.5 / §21.4.6: Allow lists exactly the methods the gateway accepts where the answer is given,
# so a 405 never names the refused method. Outside a dialog: calls, registrations and OPTIONS;
# inside one: what ends or is relayed across the call.
ALLOW_OUT_OF_DIALOG = "INVITE, ACK, CANCEL, OPTIONS, REGISTER"
ALLOW_IN_DIALOG = "INVITE, ACK, CANCEL, BYE, " + ", ".join(sorted(RELAYED_IN_DIALOG - {"INVITE"}))
def copy_body(source: Message, destination: Message) -> None:
    """Move the body and the headers that describe it; nothing else."""
    if not source.body:
        return
    for name in BODY_HEADERS:
        value = source.get(name)
        if value is not None:
            destination.headers.append((name, value))
    destination.body = source.body


def relay_response(
    b_response: Response, a_request: Request, to_tag: str, contact: str | None, status: int | None = None
) -> Response:
    """Leg A's response mirroring leg B's: same status and reason unless mapped, body for 18x/2xx."""
    final = status if status is not None else b_response.status
    reason = b_response.reason if final == b_response.status and b_response.reason else None
    response = make_response(a_request, final, reason, to_tag=to_tag)
    if 100 < final < 300:
        # §12.1.1: a dialog-creating response carries the request's Record-Route, in order, so
        # the proxies that asked to stay on the path see the rest of the dialog.
        response.headers += [("Record-Route", value) for value in a_request.get_all("Record-Route")]
        if contact is not None:
            response.headers.append(("Contact", contact))
    if final < 300:
        copy_body(b_response, response)
    elif final == 422:
        # RFC 4028 §6: the smallest interval the far end accepts, so the requester can try again.
        min_se = b_response.get("Min-SE")
        if min_se is not None:
            response.headers.append(("Min-SE", min_se))
    return response

