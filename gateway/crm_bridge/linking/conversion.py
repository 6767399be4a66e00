"""T13: where a lead's activities are bound once the lead is converted.

The CRM service performs the conversion; this rule decides the bindings so it lives in one place:
every activity that was on the lead stays on it and is also bound to each item the conversion created.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.crm_bridge.linking.model import ItemRef, ItemType


@dataclass(frozen=True, order=True)
class Binding:
    """One activity bound to one item (a row of ActivityBinding)."""

    activity_id: int
    ref: ItemRef


def bindings_after_conversion(
    lead: ItemRef, new_items: Iterable[ItemRef], activity_ids: Iterable[int]
) -> tuple[Binding, ...]:
    """Every binding that must exist after `lead` was converted into `new_items` (SPEC T13).

    Includes the lead's own bindings (they stay), so the service may insert whatever is missing and
    re-running the conversion binds nothing twice. Sorted by activity, then item.
    Raises ValueError when `lead` is not a lead or a new item is a lead.
    """
    if lead.type != ItemType.LEAD:
        raise ValueError(f"only a lead is converted (T13); got a {lead.type}")
    targets = {lead}
    for ref in new_items:
        if ref.type == ItemType.LEAD:
            raise ValueError(f"a lead converts into contacts, companies and deals, not into lead {ref.id}")
        targets.add(ref)
    return tuple(sorted(Binding(activity_id, ref) for activity_id in set(activity_ids) for ref in targets))
