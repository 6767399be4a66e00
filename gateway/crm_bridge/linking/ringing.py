"""T7's routing half: whom an incoming call rings first, for how long, and who takes over.

With the number's option *route incoming calls to the responsible employee when the caller is known*,
a known client's call rings that employee directly, alone, for the ring timeout; then the number's queue
group takes the call (ARCHITECTURE §4: known caller to responsible → number's queue group → fallback).
Without the option, for a new caller, or with nobody to ring first, the queue group takes it at once.

The responsible rung is the one `decide` made responsible for the call, so the call rings whoever its
CRM activity goes to. A responsible `decide` took from the queue group (T10 in the plan: the client's
own was deactivated or unset) is not "the responsible employee" T7 means: the queue rings instead.
Deactivated employees are never rung.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.crm_bridge.linking import party
from gateway.crm_bridge.linking.engine import INACTIVE_NOTE, active_queue
from gateway.crm_bridge.linking.model import Action, Channel, Direction, Interaction, LinkPlan

#: The rule id of ringing the number's queue group (after the responsible, or instead of them).
RULE_QUEUE_GROUP = "queue_group"


@dataclass(frozen=True)
class RingPlan:
    """Ring `responsible_id` alone for `ring_timeout` seconds (None: nobody first), then `queue` in order.

    `queue` holds the queue group's active members without the responsible already rung; an empty
    `order` means nobody can take the call.
    """

    responsible_id: int | None
    ring_timeout: float | None
    queue: tuple[int, ...]
    rule_ids: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[int, ...]:
        """Every employee the call may ring, first to last."""
        first = () if self.responsible_id is None else (self.responsible_id,)
        return (*first, *self.queue)


def ring_responsible(interaction: Interaction, plan: LinkPlan, *, ring_timeout: float) -> RingPlan:
    """Whom the inbound call `interaction` (decided as `plan`) rings, T7 first, then the queue group.

    `ring_timeout` is how many seconds the responsible rings alone before the queue group takes over.
    Raises ValueError for an email, an outbound call, a plan of another interaction or a timeout that is
    not a positive number of seconds.
    """
    _check(interaction, plan, ring_timeout)
    responsible, notes = _responsible_to_ring(interaction, plan)
    queue = tuple(member for member in active_queue(interaction) if member != responsible)
    if responsible is not None:
        return RingPlan(responsible, ring_timeout, queue, ("T7", RULE_QUEUE_GROUP))
    rules = ("T7", RULE_QUEUE_GROUP) if notes else (RULE_QUEUE_GROUP,)
    return RingPlan(None, None, queue, rules, notes)


def _check(interaction: Interaction, plan: LinkPlan, ring_timeout: float) -> None:
    if interaction.channel != Channel.CALL:
        raise ValueError(f"only a call rings employees; got an interaction on channel {interaction.channel}")
    if interaction.direction != Direction.INBOUND:
        raise ValueError("only an inbound call rings our employees; an outbound call rings the number dialled")
    if plan.interaction_key != interaction.key:
        raise ValueError(f"the plan was decided for interaction {plan.interaction_key!r}, not {interaction.key!r}")
    if not (math.isfinite(ring_timeout) and ring_timeout > 0):
        raise ValueError(f"ring_timeout must be a positive number of seconds; got {ring_timeout!r}")


def _responsible_to_ring(interaction: Interaction, plan: LinkPlan) -> tuple[int | None, tuple[str, ...]]:
    """The responsible T7 rings first, or None with the notes saying why a known client's was skipped."""
    if not interaction.settings.route_known_to_responsible or not party.is_known(interaction.knowledge):
        return None, ()
    if plan.action in (Action.NOTHING, Action.RECORD_ONLY) and {"T8", "T9"} & set(plan.rule_ids):
        # R1: T8/T9 change what the CRM records, never where a call rings: the client's owner still
        # rings first, though the plan records nothing for them.
        owner = party.owner(party.attachment(interaction.knowledge))
        if owner is None:
            return None, ()
        if not interaction.is_active(owner):
            return None, (f"the client's responsible, employee {owner}{INACTIVE_NOTE}",)
        return owner, ()
    if plan.action in (Action.NOTHING, Action.RECORD_ONLY) or plan.responsible_id is None:
        return None, ()
    if "T10" in plan.rule_ids:
        return None, tuple(note for note in plan.notes if note.endswith(INACTIVE_NOTE))
    if not interaction.is_active(plan.responsible_id):
        return None, (f"the client's responsible, employee {plan.responsible_id}{INACTIVE_NOTE}",)
    return plan.responsible_id, ()


def explain_ring(ring: RingPlan) -> list[str]:
    """One sentence per rule id of `ring`, then its notes."""
    lines = []
    for rule_id in ring.rule_ids:
        if rule_id == "T7" and ring.responsible_id is not None:
            text = (f"known caller → ring their responsible, employee {ring.responsible_id}, "
                    f"alone for {ring.ring_timeout:g} s")
        elif rule_id == "T7":
            text = "known caller, but their responsible is not rung"
        else:
            who = ", ".join(map(str, ring.queue))
            step = "then the number's queue group" if ring.responsible_id is not None else "the number's queue group"
            text = f"{step}: employees {who}" if ring.queue else f"{step} has no active member to ring"
        lines.append(f"{rule_id}: {text}")
    lines.extend(f"note: {note}" for note in ring.notes)
    return lines
