"""Call control's own vocabulary: what happened to a call, with no SIP in it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.routing.decision import RouteDecision
from gateway.routing.request import RouteRequest
from gateway.routing.targets import Target


@dataclass(frozen=True, slots=True)
class CallStarted:
    """An inbound INVITE passed the screen and waits for its routing decision (state ROUTING)."""

    call_id: str
    request: RouteRequest
    at: float


@dataclass(frozen=True, slots=True)
class CallOffered:
    """An inbound call was accepted for routing and is being offered to `target`."""

    call_id: str  # leg A's SIP Call-ID: the interaction key for CRM idempotency (SPEC C2)
    caller: str  # From URI of leg A
    callee: str  # the dialled Request-URI user
    target: str
    rule_ids: tuple[str, ...]
    at: float
    decision: RouteDecision | None = None


@dataclass(frozen=True, slots=True)
class LegOffered:
    """Leg B's INVITE went out to `target` (who was offered the call; R2's *evenly* counts these)."""

    call_id: str
    target: Target
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The callee answered; `setup_seconds` runs from the offer to the answer."""

    call_id: str
    at: float
    setup_seconds: float
    target: Target | None = None  # who answered (an employee target names the employee)


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The call never connected; `status` is what the caller was answered (487 when it gave up)."""

    call_id: str
    status: int
    at: float


# Why a connected call ended (`CallEnded.reason`).
ENDED_BYE = "bye"  # a side hung up
ENDED_ACK_TIMEOUT = "ack-timeout"  # a 2xx was never acknowledged (RFC 3261 §13.3.1.4)
ENDED_SESSION_EXPIRED = "session-expired"  # no session refresh in time (RFC 4028 §10)
ENDED_MAX_DURATION = "max-duration"  # longer than [sip] max_call_seconds
ENDED_TRANSFERRED = "transferred"  # an attended transfer's consultation call, now part of the first call
ENDED_TRANSFER_UNANSWERED = "transfer-unanswered"  # R5: nobody took a blind transfer, nor its recall
END_REASONS = (
    ENDED_BYE, ENDED_ACK_TIMEOUT, ENDED_SESSION_EXPIRED, ENDED_MAX_DURATION, ENDED_TRANSFERRED,
    ENDED_TRANSFER_UNANSWERED,
)


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A connected call ended; `ended_by` is "caller", "callee" or "gateway" (timeouts), `reason`
    one of `END_REASONS`."""

    call_id: str
    duration: float
    ended_by: str
    at: float
    reason: str = ENDED_BYE


# How a call was passed on (`CallTransferred.kind`).
BLIND, ATTENDED, RECALL = "blind", "attended", "recall"


@dataclass(frozen=True, slots=True)
class CallTransferred:
    """A connected call was passed from one employee to another (SPEC R5): the remaining party now
    talks to `to_employee_id`. `kind` is "blind", "attended" (the consultation call `consultation_call_id`
    is part of this call from now on) or "recall" (a blind transfer nobody took came back)."""

    call_id: str
    from_employee_id: int | None
    to_employee_id: int | None
    at: float
    kind: str = BLIND
    consultation_call_id: str | None = None


CallEvent = CallStarted | CallOffered | LegOffered | CallAnswered | CallFailed | CallEnded | CallTransferred
