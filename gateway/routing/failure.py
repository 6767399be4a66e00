"""Routing's failure table and hunting policy: what the caller hears when leg B fails, and which
failures move the call on to the next target (model: Kamailio's failure_route).

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


