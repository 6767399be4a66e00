"""Finding a party in the built-in CRM: one indexed query on the normalised phone/email (SPEC C3, O5).

This is on the call path (ARCHITECTURE: "one indexed query on the normalised phone"), so everything the
linking engine needs — matching leads, contacts, companies with their responsibles and statuses, the
deals of those items, and whether the value belongs to an employee (T9) or the exception list (T8) —
comes back from a single ``UNION ALL`` statement in one round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crm_bridge.linking import ItemRef, KnownItem, PartyKnowledge
from gateway.storage.inline_reads import InlineReads, prepare
from gateway.storage.models import (
    Company,
    Contact,
    Deal,
    Employee,
    EmployeeEmail,
    EmployeePhone,
    ExceptionEntry,
    ItemEmail,
    ItemPhone,
    Lead,
)

_EMPLOYEE, _EXCEPTION = "employee", "exception"


def _row(kind: str, item_id: Any, responsible: Any, status: Any) -> list[Any]:
    return [
        sa.literal(kind, sa.String(16)).label("kind"),
        item_id.label("item_id"),
        responsible.label("responsible_id"),
        status.label("status"),
    ]


def _no_responsible() -> Any:
    return sa.cast(sa.null(), sa.Integer)


@functools.cache
def party_query(by_phone: bool, by_email: bool) -> sa.CompoundSelect:
    """The statement behind :func:`find_party`, with bind parameters ``phone`` and ``email``.

    Built once per shape and reused: on the call path, building this union costs more than running it.
    """
    phone, email = sa.bindparam("phone", type_=sa.String), sa.bindparam("email", type_=sa.String)
    matched_parts: list[sa.Select[Any]] = []
    screens: list[sa.Select[Any]] = []
    if by_phone:
        matched_parts.append(
            sa.select(ItemPhone.item_type, ItemPhone.item_id).where(ItemPhone.normalized == phone)
        )
        screens.append(
            sa.select(*_row(_EMPLOYEE, EmployeePhone.employee_id, _no_responsible(), sa.literal("active")))
            .join(Employee, Employee.id == EmployeePhone.employee_id)
            .where(EmployeePhone.normalized == phone, Employee.active.is_(True))
        )
        screens.append(
            sa.select(*_row(_EXCEPTION, ExceptionEntry.id, _no_responsible(), sa.literal("active"))).where(
                ExceptionEntry.normalized == phone, ExceptionEntry.kind == "phone"
            )
        )
    if by_email:
        matched_parts.append(
            sa.select(ItemEmail.item_type, ItemEmail.item_id).where(ItemEmail.normalized == email)
        )
        screens.append(
            sa.select(*_row(_EMPLOYEE, EmployeeEmail.employee_id, _no_responsible(), sa.literal("active")))
            .join(Employee, Employee.id == EmployeeEmail.employee_id)
            .where(EmployeeEmail.normalized == email, Employee.active.is_(True))
        )
        screens.append(
            sa.select(*_row(_EXCEPTION, ExceptionEntry.id, _no_responsible(), sa.literal("active"))).where(
                ExceptionEntry.normalized == email, ExceptionEntry.kind == "email"
            )
        )
    matched = (matched_parts[0] if len(matched_parts) == 1 else sa.union_all(*matched_parts)).cte("matched")

    def ids_of(item_type: str) -> sa.Select[Any]:
        return sa.select(matched.c.item_id).where(matched.c.item_type == item_type)

    items = [
        sa.select(*_row("lead", Lead.id, Lead.responsible_id, Lead.status)).where(
            Lead.id.in_(ids_of("lead"))
        ),
        sa.select(*_row("contact", Contact.id, Contact.responsible_id, sa.literal("active"))).where(
            Contact.id.in_(ids_of("contact"))
        ),
        sa.select(*_row("company", Company.id, Company.responsible_id, sa.literal("active"))).where(
            Company.id.in_(ids_of("company"))
        ),
        # The party's deals: through the contacts and companies it is, and the leads they came from.
        sa.select(*_row("deal", Deal.id, Deal.responsible_id, Deal.status)).where(
            sa.or_(
                Deal.contact_id.in_(ids_of("contact")),
                Deal.company_id.in_(ids_of("company")),
                Deal.lead_id.in_(ids_of("lead")),
            )
        ),
    ]
    return sa.union_all(*items, *screens)


async def find_party(
    session: AsyncSession, *, phone: str | None = None, email: str | None = None
) -> PartyKnowledge:
    """What the CRM knows about a party, by its NORMALISED phone (E.164) and/or email.

    Normalise first with :mod:`gateway.crm_bridge.identity`; a raw value simply matches nothing.
    """
    if not phone and not email:
        return PartyKnowledge()
    # Core execution on the session's connection: the ORM layer adds nothing to a plain row query.
    connection = await session.connection()
    statement = party_query(bool(phone), bool(email))
    return _knowledge((await connection.execute(statement, {"phone": phone, "email": email})).all())


class InlinePartyLookup:
    """`find_party` on a SQLite file through `InlineReads`: the router's lookup of every call, without
    a session (which cost several times the query itself)."""

    def __init__(self, reads: InlineReads) -> None:
        self._reads = reads
        self._prepared = {shape: prepare(party_query(*shape)) for shape in ((True, False), (False, True), (True, True))}

    async def find_party(self, *, phone: str | None = None, email: str | None = None) -> PartyKnowledge:
        """As :func:`find_party`, by the NORMALISED phone and/or email."""
        if not phone and not email:
            return PartyKnowledge()
        prepared = self._prepared[(bool(phone), bool(email))]
        return _knowledge(await self._reads.rows(prepared, {"phone": phone, "email": email}))

    def close(self) -> None:
        self._reads.close()


def _knowledge(rows: Sequence[Any]) -> PartyKnowledge:
    """The party's knowledge from the rows of `party_query`."""
    items: dict[ItemRef, KnownItem] = {}
    is_employee = is_exception = False
    for kind, item_id, responsible_id, status in rows:
        if kind == _EMPLOYEE:
            is_employee = True
        elif kind == _EXCEPTION:
            is_exception = True
        else:
            ref = ItemRef(kind, int(item_id))
            items.setdefault(ref, KnownItem(ref=ref, responsible_id=responsible_id, status=status))
    ordered = tuple(sorted(items.values(), key=lambda item: (item.ref.type, item.ref.id)))
    return PartyKnowledge(items=ordered, is_employee=is_employee, is_exception=is_exception)
