"""Readable reasons for a LinkPlan: one line per rule id, e.g.
"T4a: caller not in the CRM and the number creates leads automatically → new lead"."""

from __future__ import annotations

from collections.abc import Callable

from gateway.crm_bridge.linking.model import Action, LinkPlan


def _who(employee_id: int | None) -> str:
    return f"employee {employee_id}" if employee_id is not None else "nobody (no active queue member to assign)"


def _items(plan: LinkPlan) -> str:
    return ", ".join(f"{ref.type} {ref.id}" for ref in plan.attach_to) or "no existing item"


def _t5(plan: LinkPlan) -> str:
    if plan.action == Action.RECORD_ONLY:
        return "the number creates no items for calls in this direction → nothing created, no activity"
    return "the number creates items for calls in this direction"


def _t7(plan: LinkPlan) -> str:
    return (f"party already in the CRM → activity on {_items(plan)}, never a new lead; "
            f"responsible {_who(plan.responsible_id)}")


def _m11(plan: LinkPlan) -> str:
    if plan.action == Action.ATTACH:
        return f"repeat sales off, legacy lead mode on → request attached to {_items(plan)}"
    made = "deal" if plan.action == Action.CREATE_DEAL else "lead"
    return (f"repeat sales mode on, nothing in progress with the client → repeat {made} "
            f"for {_items(plan)}, created even where new items are off")


def _t10(plan: LinkPlan) -> str:
    # On an attachment T10 stands in for a client's responsible who was deactivated (see the notes).
    what = "the activity" if plan.action == Action.ATTACH else "the new item"
    return (f"responsible of {what}: {_who(plan.responsible_id)} (first active queue member, or the "
            "employee who placed an outbound call)")


def _t12(plan: LinkPlan) -> str:
    pipeline = f"pipeline {plan.pipeline_id}" if plan.pipeline_id is not None else "the default pipeline"
    with_ = " + ".join(plan.create[1:]) or "the existing client"
    return f"simple mode, new request → deal in {pipeline} with {with_}"


_RULES: dict[str, Callable[[LinkPlan], str]] = {
    "T3": lambda p: "CRM in simple mode (no leads)" if p.action == Action.CREATE_DEAL
    else "CRM in classic mode (with leads)",
    "T4a": lambda p: "caller not in the CRM and the number creates leads automatically → new lead",
    "T4b": lambda p: "caller not in the CRM and the number offers creation in the call card → nothing "
    "created until the employee creates a lead or contact",
    "T5": _t5,
    "T6": lambda p: f"new items carry the number's source {p.source_id}" if p.source_id is not None
    else "the number names no source: new items carry none",
    "T7": _t7,
    "T8": lambda p: "party on the CRM exception list → logged by the gateway only, nothing created, no activity",
    "T9": lambda p: "party is one of our employees → the call is not recorded in the CRM",
    "T10": _t10,
    "T11": lambda p: "a manual transfer moves the new lead to the transferee",
    "T12": _t12,
    "M1": lambda p: "the mailbox saves nothing automatically here (integration off, or no items for new "
    "senders) → kept in the mailbox, savable by hand",
    "M2": lambda p: "the mailbox's spam folder is the inbox → no mail of it is saved automatically",
    "M3": lambda p: "saved by hand: refused, see below" if p.action == Action.REFUSED
    else "saved by hand: bound by the same rules as an automatic save",
    "M4": lambda p: "mail of our own employees is never saved to the CRM",
    "M12": lambda p: f"a reply → bound to the items of the mail it answers: {_items(p)}",
    "M13": lambda p: f"responsible of the new item: {_who(p.responsible_id)} (the next active member in turn "
    "of the mailbox's distribution queue)",
    "M8": lambda p: "the client's responsible is not in the mailbox's queue → new item for a queue member",
    "M11": _m11,
    "R6": lambda p: "the party has no usable number or address → nothing created (it could never be matched "
    "again); the call stays in the call log",
}


def explain_lines(plan: LinkPlan) -> list[str]:
    """One sentence per rule id of `plan`, then the plan's notes: the rule ids are the only source."""
    lines = []
    for rule_id in plan.rule_ids:
        render = _RULES.get(rule_id)
        lines.append(f"{rule_id}: {render(plan) if render else 'applied'}")
    lines.extend(f"note: {note}" for note in plan.notes)
    return lines


def explain(plan: LinkPlan) -> str:
    """The plan's reasons as text, one line per rule id."""
    return "\n".join(explain_lines(plan))
