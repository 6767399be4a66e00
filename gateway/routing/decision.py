"""What routing decided and why: the ring steps (or the status to answer) plus the rule ids."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.routing.targets import RingStep, Target


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Ring `steps` in order (hunting), or reject with `status` when there is none.

    `rule_ids` names every rule that produced the decision, first to last, so an operator can ask
    afterwards why a call went where it went (SPEC C1, R7); `notes` say why something was skipped.
    `number` is the gateway number the call was identified as (E.164), when it was one;
    `caller_employee_id` the employee whose phone placed the call (busy while it lasts, SPEC R3).
    """

    steps: tuple[RingStep, ...]
    status: int | None
    rule_ids: tuple[str, ...]
    notes: tuple[str, ...] = ()
    number: str | None = None
    caller_employee_id: int | None = None

    @property
    def forwards(self) -> bool:
        return bool(self.steps)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every target of every step, in ringing order."""
        return tuple(target for step in self.steps for target in step.targets)

    @property
    def uris(self) -> tuple[str, ...]:
        """The URI of every target that has one, in ringing order (static routes' view)."""
        return tuple(target.uri for target in self.targets if target.uri)


def explain(decision: RouteDecision, *, steps_shown: int | None = None) -> str:
    """One human line: the outcome and the rules that led to it; `steps_shown`: name at most that many
    ring steps and count the rest (a queue group of a hundred would make a line of several KB)."""
    if decision.steps:
        shown = decision.steps if steps_shown is None else decision.steps[:steps_shown]
        outcome = "ring " + ", then ".join([step.describe() for step in shown])
        rest = len(decision.steps) - len(shown)
        if rest:
            outcome += f", then {rest} more step{'s' if rest > 1 else ''}"
    else:
        outcome = f"reject {decision.status}"
    return f"{outcome} (rules: {' → '.join(decision.rule_ids) or 'none'})"
