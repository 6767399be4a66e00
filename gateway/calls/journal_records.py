"""What the call journal writes to its spool for each call, and how a record becomes a call again.

Kinds, in the order a call produces them (each a JSON object, see `gateway.calls.spool`):
- "seen": the router found the number and the caller, before its CRM lookup (a crash now still logs
  the call, as interrupted before it was routed);
- "routed": the router decided (`RoutedCall` with its routing facts and, when it made one in time, its
  CRM decision: a replay stores that one, so the call is recorded by the decision it rang by, unless one
  is stored for the Call-ID already: SPEC C2; without one the CRM decision is made on replay);
- "answered", "transferred", "ended": the arguments of the journal's jobs of the same names.
A call with no "ended" record was up when the gateway stopped: `interrupted_end` ends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.crm_bridge import call_hooks
from gateway.routing.decision import RouteDecision
from gateway.routing.explanation import explain_lines

SEEN, ROUTED, ANSWERED, TRANSFERRED, ENDED = "seen", "routed", "answered", "transferred", "ended"
RULE_INTERRUPTED = "C4.interrupted"
NOT_ROUTED_NOTE = "the gateway stopped before the call was routed"
INTERRUPTED_NOTE = "the gateway stopped during the call; ended at its restart"
# Call log outcomes.
ANSWERED_OUTCOME, FAILED_OUTCOME = "answered", "failed"


def utcnow() -> datetime:
    return datetime.now(UTC)


#: The decision of a call replayed from the spool: it is over, nothing rings any more.
REPLAYED = RouteDecision((), None, (RULE_INTERRUPTED,))


@dataclass
class RoutedCall:
    """What the router knew when it decided: the journal's start of a call."""

    call_id: str
    direction: str
    number_id: int | None
    number: str  # the gateway number (E.164), or what was dialled when none matched
    party_raw: str
    party_e164: str | None
    decision: RouteDecision
    # None: decided later (budget passed, database down); a DecidedPlan in the writer process.
    crm: call_hooks.CallDecision | call_hooks.DecidedPlan | None = None
    started_at: datetime = field(default_factory=utcnow)
    identity_rule_ids: tuple[str, ...] = ()  # how the caller was identified (R6)
    identity_notes: tuple[str, ...] = ()
    agent_id: int | None = None  # the employee who placed an outbound call (T10: its responsible)
    routing: dict[str, Any] | None = None  # the call log's routing record as spooled (None: from `decision`)
    # `decision`'s explanation lines once made: the spool and the call log both ask for the record.
    _explained: tuple[RouteDecision, list[str]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def crm_party(self) -> str:
        """Who the CRM decides on: the caller as the router identified them (E.164, e.g. from a trusted
        P-Asserted-Identity), else the text as received (R6), as the router's own lookup does."""
        return self.party_e164 or self.party_raw

    def routing_record(self) -> dict[str, Any]:
        """The call log's `routing`: how the caller was identified and why the call went where it went."""
        if self.routing is not None:
            return self.routing
        decision = self.decision
        explained = self._explained
        if explained is None or explained[0] is not decision:
            explained = self._explained = (decision, explain_lines(decision))
        return {
            "rule_ids": [*self.identity_rule_ids, *decision.rule_ids],
            "notes": [*self.identity_notes, *decision.notes],
            "explanation": list(explained[1]),
        }


def encode_call(call: RoutedCall, *, routed: bool = True) -> dict[str, Any]:
    """A "routed" (or, `routed` False, a "seen") record of `call`, with the router's CRM decision if it
    made one (the spool and the writer process get the same record)."""
    routing = call.routing_record() if routed else {
        "rule_ids": [*call.identity_rule_ids, RULE_INTERRUPTED],
        "notes": [*call.identity_notes, NOT_ROUTED_NOTE],
        "explanation": [],
    }
    record = {
        "call_id": call.call_id, "direction": call.direction, "number_id": call.number_id, "number": call.number,
        "party_raw": call.party_raw, "party_e164": call.party_e164, "started_at": call.started_at.isoformat(),
        "agent_id": call.agent_id, "routing": routing,
    }
    if call.crm is not None:
        decided = call_hooks.DecidedPlan(call.crm.plan, call.crm.context)
        record["crm"] = decided.to_dict()
    return record


def decode_call(data: dict[str, Any]) -> RoutedCall:
    """The call of a "routed" or "seen" record (its CRM outcome to be decided again, unless the record
    carries the router's)."""
    crm = data.get("crm")
    return RoutedCall(
        call_id=data["call_id"], direction=data["direction"], number_id=data.get("number_id"),
        number=data.get("number") or "", party_raw=data.get("party_raw") or "", party_e164=data.get("party_e164"),
        decision=REPLAYED, started_at=datetime.fromisoformat(data["started_at"]), agent_id=data.get("agent_id"),
        routing=data.get("routing"), crm=call_hooks.DecidedPlan.from_dict(crm) if crm else None,
    )


@dataclass(frozen=True)
class EndRecord:
    """The arguments of the journal's end job."""

    outcome: str
    status: int | None
    answered_by: int | None
    duration: float
    offered: list[int]
    ended_at: datetime
    legs: list[dict[str, Any]] | None = None
    transfers: list[dict[str, Any]] | None = None

    def encode(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "status": self.status, "answered_by": self.answered_by,
                "duration": self.duration, "offered": self.offered, "ended_at": self.ended_at.isoformat(),
                "legs": self.legs, "transfers": self.transfers}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> EndRecord:
        return cls(data["outcome"], data.get("status"), data.get("answered_by"), float(data.get("duration") or 0.0),
                   list(data.get("offered") or []), datetime.fromisoformat(data["ended_at"]),
                   data.get("legs"), data.get("transfers"))


def interrupted_end(records: list[tuple[str, dict[str, Any]]], restarted_at: datetime,
                    last_alive: datetime | None) -> EndRecord:
    """The end of a call the gateway stopped during: answered (the CRM activity completed) when it was,
    else failed; at `restarted_at`, having lasted from its answer to `last_alive` (the spool's last write
    by the stopped run: when it was last known to be running)."""
    offered: list[int] = []
    answer: dict[str, Any] | None = None
    for kind, data in records:
        if kind == ANSWERED:
            answer = data
            offered += [o for o in data.get("offered") or [] if o not in offered]
    if answer is None:
        return EndRecord(FAILED_OUTCOME, None, None, 0.0, offered, restarted_at)
    answered_at = datetime.fromisoformat(answer["at"])
    duration = max(((last_alive or restarted_at) - answered_at).total_seconds(), 0.0)
    return EndRecord(ANSWERED_OUTCOME, None, answer.get("employee_id"), round(duration, 3), offered, restarted_at)


def spooled_call(records: list[tuple[str, dict[str, Any]]]) -> RoutedCall | None:
    """The call a spooled call's records describe: its "routed" record, else its "seen" one."""
    routed = [data for kind, data in records if kind == ROUTED]
    seen = [data for kind, data in records if kind == SEEN]
    chosen = routed[-1] if routed else (seen[-1] if seen else None)
    return decode_call(chosen) if chosen is not None else None
