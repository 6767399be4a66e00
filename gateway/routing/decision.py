"""What routing decided and why: the targets (or the status to answer) plus the rule ids."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Forward to `targets` in order (hunting), or reject with `status` when there is none.

    `rule_ids` names every rule that produced the decision, first to last, so an operator can ask
    afterwards why a call went where it went (SPEC C1).
    """

    targets: tuple[str, ...]
    status: int | None
    rule_ids: tuple[str, ...]

    @property
    def forwards(self) -> bool:
        return bool(self.targets)


def explain(decision: RouteDecision) -> str:
    """One human line: the outcome and the rules that led to it."""
    outcome = f"forward to {', '.join(decision.targets)}" if decision.targets else f"reject {decision.status}"
    return f"{outcome} (rules: {' → '.join(decision.rule_ids) or 'none'})"
