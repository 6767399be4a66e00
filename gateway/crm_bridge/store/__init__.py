"""The built-in CRM: a :class:`~gateway.crm_bridge.backend.CrmBackend` over the gateway's own tables.

`BuiltinCrm` is stateless; every call works in the session it is given and never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.backend import (
    ActivityChange,
    ActivitySpec,
    Conversion,
    ItemSpec,
    NewItem,
    TimelineSpec,
)
from gateway.crm_bridge.linking import ItemRef, PartyKnowledge
from gateway.crm_bridge.rights import SYSTEM, Actor
from gateway.crm_bridge.store import conversion, items, lookup
from gateway.crm_bridge.store.items import activities_of, get_item, timeline_of
from gateway.crm_bridge.store.lookup import find_party

__all__ = ["BuiltinCrm", "activities_of", "find_party", "get_item", "timeline_of"]


class BuiltinCrm:
    """The gateway's own CRM store (the default CrmBackend)."""

    #: Every write is made in the caller's session, so a rolled-back transaction leaves no trace of it
    #: (the outbox worker applies entries in batches only for such a backend).
    writes_in_session = True

    async def find_party(
        self, session: AsyncSession, *, phone: str | None = None, email: str | None = None
    ) -> PartyKnowledge:
        """See :func:`gateway.crm_bridge.store.lookup.find_party`."""
        return await lookup.find_party(session, phone=phone, email=email)

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
        return await items.create_lead(
            session, title=title, new=new, contact_id=contact_id, company_id=company_id, actor=actor
        )

    async def create_contact(
        self,
        session: AsyncSession,
        *,
        name: str,
        new: NewItem,
        company_id: int | None = None,
        actor: Actor = SYSTEM,
    ) -> ItemRef:
        """A new contact."""
        return await items.create_contact(session, name=name, new=new, company_id=company_id, actor=actor)

    async def create_company(
        self, session: AsyncSession, *, name: str, new: NewItem, actor: Actor = SYSTEM
    ) -> ItemRef:
        """A new company."""
        return await items.create_company(session, name=name, new=new, actor=actor)

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
        """A new active deal (pipeline None: the default pipeline)."""
        return await items.create_deal(
            session,
            title=title,
            new=new,
            pipeline_id=pipeline_id,
            contact_id=contact_id,
            company_id=company_id,
            actor=actor,
        )

    async def convert_lead(
        self, session: AsyncSession, lead_id: int, *, to: Sequence[str], actor: Actor = SYSTEM
    ) -> Conversion:
        """T13: see :mod:`gateway.crm_bridge.store.conversion`."""
        return await conversion.convert_lead(session, lead_id, to=to, actor=actor)

    async def close_item(self, session: AsyncSession, ref: ItemRef, *, actor: Actor = SYSTEM) -> None:
        """Close a lead or a deal."""
        await items.close_item(session, ref, actor=actor)

    async def set_responsible(
        self, session: AsyncSession, ref: ItemRef, responsible_id: int, *, actor: Actor = SYSTEM
    ) -> None:
        """New responsible for an item (T11)."""
        await items.set_responsible(session, ref, responsible_id, actor=actor)

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
        """An activity bound to every item in ``refs``."""
        return await items.add_activity(
            session,
            kind=kind,
            direction=direction,
            refs=refs,
            responsible_id=responsible_id,
            subject=subject,
            interaction_key=interaction_key,
            deadline=deadline,
            details=details,
        )

    async def complete_activity(
        self,
        session: AsyncSession,
        activity_id: int,
        *,
        completed_at: datetime | None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Mark an activity done (or leave it open) and merge details into it."""
        await items.complete_activity(session, activity_id, completed_at=completed_at, details=details)

    async def add_timeline(
        self, session: AsyncSession, ref: ItemRef, *, kind: str, text: str, employee_id: int | None = None
    ) -> int:
        """A timeline entry on one item."""
        return await items.add_timeline(session, ref, kind=kind, text=text, employee_id=employee_id)

    # -- many at once (gateway.crm_bridge.backend.BatchCrmBackend) ---------------------------------------
    async def create_items(
        self, session: AsyncSession, specs: Sequence[ItemSpec], *, actor: Actor = SYSTEM
    ) -> list[ItemRef]:
        """New items, one statement per table for all of them."""
        return await items.create_items(session, specs, actor=actor)

    async def add_activities(self, session: AsyncSession, specs: Sequence[ActivitySpec]) -> list[int]:
        """Activities with their bindings."""
        return await items.add_activities(session, specs)

    async def add_timelines(self, session: AsyncSession, specs: Sequence[TimelineSpec]) -> list[int]:
        """Timeline entries."""
        return await items.add_timelines(session, specs)

    async def complete_activities(self, session: AsyncSession, changes: Sequence[ActivityChange]) -> None:
        """Activities marked done (or left open) with details merged."""
        await items.complete_activities(session, changes)
