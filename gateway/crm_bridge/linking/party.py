"""Views over what the CRM knows about a party: which items are open, which are the client, whose it is.

The attachment rule for a known party (SPEC T7) lives here so that calls and mail agree on it:

- the activity is bound to every *open* item of the party: its active leads, active deals, and its
  clients (contacts and companies are always open);
- a party with no open item at all (only closed or converted leads, closed deals) gets the activity on
  its most recent closed lead, else its most recent closed deal — the record of the finished request;
- the party's *owner* (the plan's responsible, the employee T7 rings) is the responsible of the most
  recent contact, else company, else active lead, else active deal, skipping items with no responsible.

"Most recent" means highest id: ids grow with creation time and, unlike timestamps, cannot tie.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.crm_bridge.linking.model import ItemRef, ItemStatus, ItemType, KnownItem, PartyKnowledge

# Bind order of an attachment: the request in progress first, then the client it belongs to.
_ATTACH_ORDER = (ItemType.DEAL, ItemType.LEAD, ItemType.CONTACT, ItemType.COMPANY)
# Whose client it is: the long-lived records decide before the requests.
_OWNER_ORDER = (ItemType.CONTACT, ItemType.COMPANY, ItemType.LEAD, ItemType.DEAL)
CLIENT_TYPES = frozenset({ItemType.CONTACT, ItemType.COMPANY})


def _most_recent_first(items: Iterable[KnownItem]) -> list[KnownItem]:
    return sorted(items, key=lambda item: item.ref.id, reverse=True)


def of_type(knowledge: PartyKnowledge, item_type: str, *, active: bool | None = None) -> list[KnownItem]:
    """The party's items of one type, most recent first; `active` filters on open/closed."""
    chosen = [item for item in knowledge.items if item.ref.type == item_type]
    if active is not None:
        chosen = [item for item in chosen if item.is_active == active]
    return _most_recent_first(chosen)


def is_known(knowledge: PartyKnowledge) -> bool:
    """True when the CRM holds any item for the party, open or closed."""
    return bool(knowledge.items)


def open_items(knowledge: PartyKnowledge) -> list[KnownItem]:
    """Active leads and deals and every contact and company, in bind order."""
    ordered: list[KnownItem] = []
    for item_type in _ATTACH_ORDER:
        ordered.extend(of_type(knowledge, item_type, active=True))
    return ordered


def clients(knowledge: PartyKnowledge) -> list[KnownItem]:
    """The party's contacts then companies, most recent first."""
    return of_type(knowledge, ItemType.CONTACT) + of_type(knowledge, ItemType.COMPANY)


def has_open_request(knowledge: PartyKnowledge) -> bool:
    """True when an active lead or an active deal is in progress with the party."""
    return bool(of_type(knowledge, ItemType.LEAD, active=True) or of_type(knowledge, ItemType.DEAL, active=True))


def closed_leads(knowledge: PartyKnowledge) -> list[KnownItem]:
    """Finished leads (closed or converted), most recent first."""
    return [item for item in of_type(knowledge, ItemType.LEAD) if item.status != ItemStatus.ACTIVE]


def attachment(knowledge: PartyKnowledge) -> list[KnownItem]:
    """Where a known party's activity goes under T7 (see the module docstring)."""
    current = open_items(knowledge)
    if current:
        return current
    finished = closed_leads(knowledge) or of_type(knowledge, ItemType.DEAL, active=False)
    return finished[:1]


def owner(items: Iterable[KnownItem]) -> int | None:
    """The responsible of the most relevant item among `items` (see the module docstring)."""
    pool = list(items)
    for item_type in _OWNER_ORDER:
        for item in _most_recent_first(i for i in pool if i.ref.type == item_type):
            if item.responsible_id is not None and (item.is_active or item_type in CLIENT_TYPES):
                return item.responsible_id
    for item in _most_recent_first(pool):
        if item.responsible_id is not None:
            return item.responsible_id
    return None


def refs(items: Iterable[KnownItem]) -> tuple[ItemRef, ...]:
    """The references of `items`, order kept."""
    return tuple(item.ref for item in items)
