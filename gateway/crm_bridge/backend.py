"""The CRM seen from the gateway: the :class:`CrmBackend` protocol.

Routing and linking never talk to a CRM directly: call hooks read through ``find_party`` and the
outbox worker writes through the other methods. The built-in store
(:class:`gateway.crm_bridge.store.BuiltinCrm`) is the default implementation; an external CRM can
replace it without touching routing or linking (ARCHITECTURE §8).

Every method takes the caller's ``session``: the built-in store writes in it, so a write and its
idempotency key commit together (SPEC C2); an external backend may ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.linking import ItemRef, PartyKnowledge
from gateway.crm_bridge.rights import SYSTEM, Actor


class CrmError(Exception):
    """A CRM request that cannot be carried out as asked (unknown item, wrong state, bad value)."""


class ItemNotFound(CrmError, LookupError):
    """The referenced CRM item does not exist."""


@dataclass(frozen=True)
class Conversion:
    """The items a lead was converted into (SPEC T13)."""

    lead: ItemRef
    contact: ItemRef | None
    company: ItemRef | None
    deal: ItemRef | None

    @property
    def created(self) -> tuple[ItemRef, ...]:
        """The new items, in the order contact, company, deal."""
        return tuple(r for r in (self.contact, self.company, self.deal) if r is not None)


@dataclass(frozen=True)
class NewItem:
    """What every new CRM item carries besides its own fields."""

    source_id: int | None = None
    responsible_id: int | None = None
    phones: Sequence[str] = ()
    emails: Sequence[str] = ()
    default_region: str | None = None  # for phones written in national form (ISO 3166 alpha-2)
    interaction_key: str | None = None  # the Call-ID / Message-ID that created it (C2)


@dataclass(frozen=True)
class ItemSpec:
    """One item to create: `label` is a lead's or deal's title, a contact's or company's name."""

    item_type: str
    label: str
    new: NewItem
    contact_id: int | None = None
    company_id: int | None = None
    pipeline_id: int | None = None
    lead_id: int | None = None  # the lead it was converted from (T13)


@dataclass(frozen=True)
class ActivitySpec:
    """One activity to record, bound to every item in `refs` (at least one, all existing)."""

    kind: str
    direction: str
    refs: Sequence[ItemRef]
    responsible_id: int | None
    subject: str
    interaction_key: str | None = None
    deadline: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivityChange:
    """An activity marked done at `completed_at` (None leaves it open) and `details` merged into its own."""

    activity_id: int
    completed_at: datetime | None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineSpec:
    """A timeline entry on one item."""

    ref: ItemRef
    kind: str
    text: str
    employee_id: int | None = None


@runtime_checkable
class CrmBackend(Protocol):
    """What the gateway needs from a CRM (SPEC T4–T13, M11): look up, create, convert, close, record."""

    async def find_party(
        self, session: AsyncSession, *, phone: str | None = None, email: str | None = None
    ) -> PartyKnowledge:
        """Every item matching the normalised phone/email, plus the employee and exception flags."""
        ...

    async def create_lead(
        self,
        session: AsyncSession,
        *,
        title: str,
        new: NewItem,
        contact_id: int | None = None,
        company_id: int | None = None,
        actor: Actor = SYSTEM,
    ) -> ItemRef:
        """A new active lead."""
        ...

    async def create_contact(
        self,
        session: AsyncSession,
        *,
        name: str,
        new: NewItem,
        company_id: int | None = None,
        actor: Actor = SYSTEM,
    ) -> ItemRef:
        """A new contact, optionally belonging to a company."""
        ...

    async def create_company(
        self, session: AsyncSession, *, name: str, new: NewItem, actor: Actor = SYSTEM
    ) -> ItemRef:
        """A new company."""
        ...

    async def create_deal(
        self,
        session: AsyncSession,
        *,
        title: str,
        new: NewItem,
        pipeline_id: int | None = None,
        contact_id: int | None = None,
        company_id: int | None = None,
        actor: Actor = SYSTEM,
    ) -> ItemRef:
        """A new active deal in ``pipeline_id`` (None: the default pipeline)."""
        ...

    async def convert_lead(
        self, session: AsyncSession, lead_id: int, *, to: Sequence[str], actor: Actor = SYSTEM
    ) -> Conversion:
        """Convert a lead into a contact, a company and/or a deal (T13)."""
        ...

    async def close_item(self, session: AsyncSession, ref: ItemRef, *, actor: Actor = SYSTEM) -> None:
        """Close a lead or a deal."""
        ...

    async def set_responsible(
        self, session: AsyncSession, ref: ItemRef, responsible_id: int, *, actor: Actor = SYSTEM
    ) -> None:
        """Give an item a new responsible (T11) and note it on the item's timeline."""
        ...

    async def add_activity(
        self,
        session: AsyncSession,
        *,
        kind: str,
        direction: str,
        refs: Sequence[ItemRef],
        responsible_id: int | None,
        subject: str,
        interaction_key: str | None = None,
        deadline: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """A call/email activity bound to every item in ``refs``; returns its id."""
        ...

    async def complete_activity(
        self,
        session: AsyncSession,
        activity_id: int,
        *,
        completed_at: datetime | None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Mark an activity done at ``completed_at`` (None: leave it open) and merge ``details`` into it."""
        ...

    async def add_timeline(
        self, session: AsyncSession, ref: ItemRef, *, kind: str, text: str, employee_id: int | None = None
    ) -> int:
        """A timeline entry on one item; returns its id."""
        ...


@runtime_checkable
class BatchCrmBackend(Protocol):
    """A backend that also takes many writes at once (the built-in store: one statement per table).

    The outbox worker applies the entries of a batch through these when the backend has them; each
    does what the one-item method of :class:`CrmBackend` does for every spec, in order.
    """

    async def create_items(
        self, session: AsyncSession, specs: Sequence[ItemSpec], *, actor: Actor = SYSTEM
    ) -> list[ItemRef]:
        """New items (see :class:`ItemSpec`); the refs in the specs' order."""
        ...

    async def add_activities(self, session: AsyncSession, specs: Sequence[ActivitySpec]) -> list[int]:
        """Activities with their bindings; ids in the specs' order."""
        ...

    async def add_timelines(self, session: AsyncSession, specs: Sequence[TimelineSpec]) -> list[int]:
        """Timeline entries; ids in the specs' order."""
        ...

    async def complete_activities(self, session: AsyncSession, changes: Sequence[ActivityChange]) -> None:
        """Each change as :meth:`CrmBackend.complete_activity` makes it."""
        ...
