"""Who a mail written from a CRM item may go to (SPEC O2, O3, O4).

The policy is pure: :func:`candidate_sources` names the records whose addresses are candidates for an
item of each type (O3), :func:`check_recipients` sorts the addresses a sender chose (O2, O4). The
database is read only in :func:`item_links` and :func:`recipient_candidates`, which gather the
item's links and each record's addresses and apply the sender's view right (O4: a client the sender may
not view is a "Hidden contact"/"Hidden company" and none of its addresses can be chosen).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.identity import normalize_email
from gateway.crm_bridge.linking import ItemRef
from gateway.crm_bridge.rights import Access, Actor, check_right
from gateway.crm_bridge.store import get_item
from gateway.storage.models import CompanyContact, Contact, ItemEmail

HIDDEN = {"contact": "Hidden contact", "company": "Hidden company", "lead": "Hidden lead"}


@dataclass(frozen=True)
class ItemLinks:
    """An item and the records O3 reads for it.

    ``contact``/``company`` are the clients linked to a lead or a deal; ``contact_company`` the company
    the linked contact (or, for a contact, the contact itself) belongs to; ``company_contacts`` the
    contacts of a company.
    """

    item: ItemRef
    contact: ItemRef | None = None
    company: ItemRef | None = None
    contact_company: ItemRef | None = None
    company_contacts: tuple[ItemRef, ...] = ()


def candidate_sources(links: ItemLinks) -> tuple[ItemRef, ...]:
    """O3: the records whose addresses are recipient candidates, in the order they are offered."""
    kind = links.item.type
    if kind == "lead":
        # A linked contact who belongs to a company drops the lead's company (its own and the contact's stay).
        company = None if links.contact is not None and links.contact_company is not None else links.company
        found: Iterable[ItemRef | None] = (links.item, links.contact, company)
    elif kind == "contact":
        found = (links.item, links.contact_company)
    elif kind == "company":
        found = (links.item, *links.company_contacts)
    else:
        # A deal reaches clients only through its links; a contact's own company is not linked to the deal.
        found = (links.contact, links.company)
    return tuple(dict.fromkeys(ref for ref in found if ref is not None))


@dataclass(frozen=True)
class Candidate:
    """One record offered as a recipient: its addresses, or hidden (O4) with none."""

    ref: ItemRef
    name: str
    addresses: tuple[str, ...]
    hidden: bool = False
    hidden_addresses: frozenset[str] = frozenset()  # for the check only, never shown


@dataclass(frozen=True)
class RecipientCheck:
    """The chosen addresses sorted by the rules: offered, outside the item (O1 may allow), refused."""

    offered: tuple[str, ...]
    outside: tuple[str, ...]
    refused: tuple[tuple[str, str, str], ...]  # (address, rule id, why)


def check_recipients(
    chosen: Sequence[str], candidates: Sequence[Candidate], *, allow_any_address: bool
) -> RecipientCheck:
    """O2/O4: each chosen (normalised) address is one of the item's, a hidden client's, or outside."""
    shown = {a for c in candidates for a in c.addresses}
    hidden = {a for c in candidates for a in c.hidden_addresses}
    offered: list[str] = []
    outside: list[str] = []
    refused: list[tuple[str, str, str]] = []
    for address in dict.fromkeys(chosen):
        if address in shown:
            offered.append(address)
        elif address in hidden:
            refused.append((address, "O4", "belongs to a client you may not view"))
        elif allow_any_address:
            outside.append(address)
        else:
            refused.append((address, "O2", "is not an address of this item or of its linked contacts and "
                                            "companies, and sending to any address is off"))
    return RecipientCheck(tuple(offered), tuple(outside), tuple(refused))


async def item_links(session: AsyncSession, ref: ItemRef) -> ItemLinks:
    """The links O3 reads for ``ref`` (raises ItemNotFound for a missing item)."""
    item: Any = await get_item(session, ref)
    if ref.type == "company":
        return ItemLinks(ref, company_contacts=await _contacts_of_company(session, ref.id))
    if ref.type == "contact":
        return ItemLinks(ref, contact_company=await _company_of_contact(session, item))
    contact = ItemRef("contact", item.contact_id) if item.contact_id is not None else None
    company = ItemRef("company", item.company_id) if item.company_id is not None else None
    contact_company = None
    if contact is not None:
        contact_company = await _company_of_contact(session, await get_item(session, contact))
    return ItemLinks(ref, contact, company, contact_company)


async def _company_of_contact(session: AsyncSession, contact: Any) -> ItemRef | None:
    if contact.company_id is not None:
        return ItemRef("company", contact.company_id)
    linked = await session.scalar(
        sa.select(CompanyContact.company_id).where(CompanyContact.contact_id == contact.id)
        .order_by(CompanyContact.company_id).limit(1)
    )
    return ItemRef("company", int(linked)) if linked is not None else None


async def _contacts_of_company(session: AsyncSession, company_id: int) -> tuple[ItemRef, ...]:
    owned = await session.scalars(sa.select(Contact.id).where(Contact.company_id == company_id))
    linked = await session.scalars(sa.select(CompanyContact.contact_id).where(CompanyContact.company_id == company_id))
    return tuple(ItemRef("contact", i) for i in sorted({*owned.all(), *linked.all()}))


async def _addresses(session: AsyncSession, ref: ItemRef) -> tuple[str, ...]:
    rows = await session.scalars(
        sa.select(ItemEmail.normalized).where(ItemEmail.item_type == ref.type, ItemEmail.item_id == ref.id)
        .order_by(ItemEmail.id)
    )
    return tuple(dict.fromkeys(rows.all()))


async def recipient_candidates(session: AsyncSession, actor: Actor, ref: ItemRef) -> list[Candidate]:
    """O3's records for ``ref`` with their addresses; those the actor may not view are hidden (O4)."""
    candidates: list[Candidate] = []
    for source in candidate_sources(await item_links(session, ref)):
        record: Any = await get_item(session, source)
        addresses = await _addresses(session, source)
        if check_right(actor, source.type, Access.VIEW, record.responsible_id):
            name = getattr(record, "name", None) or getattr(record, "title", "")
            candidates.append(Candidate(source, name, addresses))
        else:
            candidates.append(Candidate(source, HIDDEN[source.type], (), True, frozenset(addresses)))
    return candidates


def no_recipient_reason(ref: ItemRef, candidates: Sequence[Candidate]) -> str | None:
    """O3's clear error when the item offers no address at all, else None."""
    if any(c.addresses for c in candidates):
        return None
    if ref.type == "deal" and not candidates:
        return f"deal {ref.id} has no linked contact or company: link one to write to it (O3)"
    if any(c.hidden for c in candidates):
        return f"{ref.type} {ref.id}: every client with an address is hidden from you (O4)"
    return f"{ref.type} {ref.id} has no email address, nor its linked contacts and companies (O3)"


def normalized_or_error(raw: str) -> str:
    """One recipient as O5 compares it; ValueError naming the bad value."""
    address = normalize_email(raw)
    if address is None:
        raise ValueError(f"{raw!r} is not an email address (expected name@domain)")
    return address
