"""The only ways SIP crosses from one leg to the other. Everything not named here stays on its leg.

What crosses:
- the body and its describing headers (SDP passes through unchanged);
- the method of in-dialog requests listed in `RELAYED_IN_DIALOG`;
- the caller's identity (From URI and display name) onto leg B's INVITE, under a new tag;
- the status of responses, through `FAILURE_STATUS` for failures.
- RFC 4028 session-timer headers, as `session_timer` decides (Min-SE of a 422 here).

Failure table (leg B's final status → what leg A is answered):

| leg B                                 | leg A | why                                                    |
|---------------------------------------|-------|--------------------------------------------------------|
| 3xx                                   | 480   | redirects are not followed; the callee is unavailable  |
| 401, 407                              | 502   | the far end wants credentials the gateway does not own |
| 408, no answer (timer B)              | 408   | RFC 3261 §21.4.9                                       |
| other 4xx, 6xx                        | same  | the callee's own answer (486 busy, 603 decline, ...)   |
| 500-599                               | 502   | the far end failed; the gateway itself is not overloaded|
| transport error / no reachable target | 503   | the gateway could not reach anyone                     |

When several legs of one ring step failed, the caller hears the best of their mapped statuses
(`best_failure`, RFC 3261 §16.7 step 6).
"""

from __future__ import annotations

from gateway.sip.message import Message, Request, Response, make_response

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
UNREACHABLE = 503
TIMEOUT = 408
UNAVAILABLE = 480
# Statuses after which the next hunting target is tried instead of answering leg A.
HUNT_ON = frozenset({408, 480, 500, 502, 503, 504, UNREACHABLE})


def failure_status(status: int) -> int:
    """Leg A's final status for leg B's failure `status` (see the module table)."""
    if 300 <= status < 400:
        return 480
    if status in (401, 407) or 500 <= status < 600:
        return 502
    return status


# A leg's failure as a hunt keeps it: (status for leg A, whether it hunts on, extra headers for A).
Failure = tuple[int, bool, list[tuple[str, str]] | None]


def _rank(status: int) -> int:
    if status >= 600:
        return 0
    if 400 <= status < 500:
        return 1 if status not in HUNT_ON else 2 if status == UNAVAILABLE else 3
    return 4


def best_failure(failures: list[Failure]) -> tuple[int, list[tuple[str, str]] | None]:
    """The failure the caller hears when several legs failed (RFC 3261 §16.7 step 6), on the
    statuses after the failure table (gateway-local 408/503 unmapped): a 6xx, else the callees' own
    4xx (486, 404, 603...), else 480, else 408, else 5xx; the first received among equals."""
    if not failures:
        return UNAVAILABLE, None
    status, _, extra = min(failures, key=lambda failure: _rank(failure[0]))
    return status, extra


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

