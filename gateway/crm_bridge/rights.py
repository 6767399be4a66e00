"""Who may view or edit which CRM item: the ONE place rights are decided.

Each employee has, per item type (lead, contact, company, deal), a *view* and an *edit* scope:
``none`` (no item of that type), ``own`` (items they are responsible for) or ``all``.
Administrators may do everything. The gateway's own writes (calls, mail) act as :data:`SYSTEM`.
An employee with no right row for a type has scope ``none`` for it: rights are granted, never assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage.models import Employee, EmployeeRight

ITEM_TYPES: tuple[str, ...] = ("lead", "contact", "company", "deal")


class Scope(StrEnum):
    """How far a right reaches within one item type."""

    NONE = "none"
    OWN = "own"
    ALL = "all"


class Access(StrEnum):
    """What the actor wants to do with an item."""

    VIEW = "view"
    EDIT = "edit"


class AccessDenied(PermissionError):
    """The actor lacks the right for this item; the message says which right is missing."""


@dataclass(frozen=True)
class Actor:
    """An employee acting on the CRM, with their rights per item type.

    ``rights`` maps an item type to ``(view scope, edit scope)``; a missing type means no right.
    """

    employee_id: int | None
    is_admin: bool = False
    rights: Mapping[str, tuple[Scope, Scope]] = field(default_factory=dict)

    def scope(self, item_type: str, access: Access | str) -> Scope:
        """The actor's scope for ``access`` on ``item_type`` (admins: ``all``)."""
        if item_type not in ITEM_TYPES:
            raise ValueError(f"unknown item type {item_type!r}: expected one of {', '.join(ITEM_TYPES)}")
        access = Access(access)
        if self.is_admin:
            return Scope.ALL
        view, edit = self.rights.get(item_type, (Scope.NONE, Scope.NONE))
        return view if access is Access.VIEW else edit


#: The gateway itself (call hooks, mail bridge, outbox worker): full rights, no employee.
SYSTEM = Actor(employee_id=None, is_admin=True)

#: An actor with no rights at all (an unknown or deactivated employee).
NOBODY = Actor(employee_id=None, is_admin=False)


def check_right(actor: Actor, item_type: str, action: Access | str, item_responsible_id: int | None) -> bool:
    """True when ``actor`` may ``action`` (view|edit) an item of ``item_type`` with that responsible.

    For a new item, pass the responsible it will get: with scope ``own`` an employee may only create
    items they are responsible for.
    """
    scope = actor.scope(item_type, action)
    if scope is Scope.ALL:
        return True
    if scope is Scope.OWN:
        return actor.employee_id is not None and item_responsible_id == actor.employee_id
    return False


def require_right(
    actor: Actor, item_type: str, action: Access | str, item_responsible_id: int | None
) -> None:
    """Raise :class:`AccessDenied` unless :func:`check_right` allows the action."""
    if not check_right(actor, item_type, action, item_responsible_id):
        who = f"employee {actor.employee_id}" if actor.employee_id is not None else "this actor"
        raise AccessDenied(
            f"{who} may not {Access(action).value} this {item_type}: "
            f"needs the {Access(action).value} right on {item_type}s (own or all)"
        )


def can_view_all(actor: Actor, items: Iterable[tuple[str, int | None]]) -> bool:
    """True when the actor may view every (item type, responsible) given.

    SPEC M7: an activity (e.g. an email) bound to several items is visible only to those who may view
    every one of them.
    """
    return all(check_right(actor, item_type, Access.VIEW, responsible) for item_type, responsible in items)


async def load_actor(session: AsyncSession, employee_id: int) -> Actor:
    """The actor for an employee, with rights read from the database.

    An unknown or inactive employee gets :data:`NOBODY` (no right at all), so a stale token cannot act.
    """
    employee = await session.get(Employee, employee_id)
    if employee is None or not employee.active:
        return NOBODY
    rows = await session.execute(select(EmployeeRight).where(EmployeeRight.employee_id == employee_id))
    rights = {r.item_type: (Scope(r.view), Scope(r.edit)) for r in rows.scalars()}
    return Actor(employee_id=employee.id, is_admin=bool(employee.is_admin), rights=rights)
