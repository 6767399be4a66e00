"""/employees: admins create and change employees; every employee may read the directory.

`sip_secret` is write-only: it becomes digest HA1s (see gateway.admin.sip_credentials) and is never
returned or logged; the API shows `has_sip_secret`. The SIP user is the extension, so changing the
extension without sending a new `sip_secret` removes the stored one (its HA1s name the old user).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminPrincipal, CurrentPrincipal
from gateway.admin.config_change import config_changed
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.errors import conflict, invalid
from gateway.admin.lookup import changes, email_or_422, get_or_404, phone_or_422, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.employees import EmployeeCreate, EmployeeOut, EmployeeUpdate, ItemRight
from gateway.admin.sip_credentials import clear_sip_secret, has_sip_secret, set_sip_secret, sip_realm
from gateway.storage.models import Employee, EmployeeEmail, EmployeePhone, EmployeeRight, Number

router = APIRouter(prefix="/employees", tags=["employees"])


def employee_out(employee: Employee) -> EmployeeOut:
    """The API view of an employee row (its collections are eagerly loaded by the model)."""
    return EmployeeOut(
        id=employee.id, name=employee.name, extension=employee.extension, is_admin=employee.is_admin,
        can_manage_numbers=employee.can_manage_numbers, active=employee.active,
        phones=[p.value for p in employee.phones], emails=[e.value for e in employee.emails],
        rights=[ItemRight(item_type=r.item_type, view=r.view, edit=r.edit) for r in employee.rights],
        has_sip_secret=has_sip_secret(employee), sip_realm=employee.sip_realm if has_sip_secret(employee) else None,
        outbound_number_id=employee.outbound_number_id,
        created_at=employee.created_at,
    )


async def _check_extension_free(session: AsyncSession, extension: str | None, employee_id: int | None) -> None:
    if extension is None:
        return
    owner = await session.scalar(select(Employee.id).where(Employee.extension == extension))
    if owner is not None and owner != employee_id:
        raise conflict(f"extension {extension} already belongs to employee {owner}; choose another")


async def _keep_an_admin(session: AsyncSession, employee: Employee) -> None:
    # Demoting or deactivating the last active admin would leave nobody able to manage the gateway.
    if not (employee.is_admin and employee.active):
        return
    others = await session.scalar(
        select(func.count()).select_from(Employee)
        .where(Employee.is_admin.is_(True), Employee.active.is_(True), Employee.id != employee.id)
    )
    if not others:
        raise conflict(f"employee {employee.id} is the last active administrator; make another "
                       "employee an administrator first")


async def _check_outbound_number(session: AsyncSession, number_id: int | None) -> None:
    if number_id is not None:
        await referenced(session, Number, number_id, "number", "outbound_number_id")


def _phones(raw: list[str], region: str | None) -> list[EmployeePhone]:
    rows: dict[str, EmployeePhone] = {}
    for i, value in enumerate(raw):
        normalized = phone_or_422(value, region, f"phones[{i}]")
        rows.setdefault(normalized, EmployeePhone(value=value, normalized=normalized))
    return list(rows.values())


def _emails(raw: list[str]) -> list[EmployeeEmail]:
    rows: dict[str, EmployeeEmail] = {}
    for i, value in enumerate(raw):
        normalized = email_or_422(value, f"emails[{i}]")
        rows.setdefault(normalized, EmployeeEmail(value=value, normalized=normalized))
    return list(rows.values())


def _sip_credentials(request: Request, employee: Employee, patch: dict[str, Any]) -> None:
    """Apply `sip_secret` (and an extension change) from a create or patch body to `employee`."""
    extension = patch["extension"] if "extension" in patch else employee.extension
    if "sip_secret" in patch:
        if patch["sip_secret"] is None:
            clear_sip_secret(employee)
        elif extension is None:
            raise invalid("sip_secret: the employee has no extension, which is their SIP user; give an "
                          "extension together with the sip_secret")
        else:
            set_sip_secret(employee, extension, sip_realm(request), patch["sip_secret"])
    elif extension != employee.extension:
        clear_sip_secret(employee)


def _rights(raw: list[ItemRight]) -> list[EmployeeRight]:
    # The last entry for an item type wins, so a list with a repeated type is not a 500.
    by_type = {r.item_type: r for r in raw}
    return [EmployeeRight(item_type=r.item_type, view=r.view, edit=r.edit) for r in by_type.values()]


@router.get("", response_model=Page[EmployeeOut], summary="List employees")
async def list_employees(session: SessionDep, page: PageDep, principal: CurrentPrincipal) -> Page[EmployeeOut]:
    """Every employee, by id."""
    total = await session.scalar(select(func.count()).select_from(Employee)) or 0
    rows = await session.scalars(select(Employee).order_by(Employee.id).limit(page.limit).offset(page.offset))
    return Page(items=[employee_out(e) for e in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=EmployeeOut, status_code=status.HTTP_201_CREATED, summary="Create an employee")
async def create_employee(
    body: EmployeeCreate, session: SessionDep, admin: AdminPrincipal, request: Request
) -> EmployeeOut:
    """Admins only. A `sip_secret` needs an `extension` (422 otherwise)."""
    await _check_extension_free(session, body.extension, None)
    await _check_outbound_number(session, body.outbound_number_id)
    employee = Employee(
        name=body.name, is_admin=body.is_admin,
        can_manage_numbers=body.can_manage_numbers, active=body.active,
        phones=_phones(body.phones, body.default_region), emails=_emails(body.emails),
        rights=_rights(body.rights), outbound_number_id=body.outbound_number_id,
    )
    _sip_credentials(request, employee, {"extension": body.extension, "sip_secret": body.sip_secret})
    employee.extension = body.extension
    session.add(employee)
    await session.commit()
    await session.refresh(employee)
    await config_changed(request, "employees")
    return employee_out(employee)


@router.get("/{employee_id}", response_model=EmployeeOut, summary="Read an employee")
async def read_employee(employee_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> EmployeeOut:
    """Any employee may read the directory."""
    return employee_out(await get_or_404(session, Employee, employee_id, "employee"))


@router.patch("/{employee_id}", response_model=EmployeeOut, summary="Change an employee")
async def update_employee(
    employee_id: IdPath, body: EmployeeUpdate, session: SessionDep, admin: AdminPrincipal, request: Request
) -> EmployeeOut:
    """Admins only. `phones`, `emails` and `rights` replace the whole list when given. A new extension
    without a new `sip_secret` removes the stored SIP secret (the phones must be given a new one)."""
    employee = await get_or_404(session, Employee, employee_id, "employee")
    patch = changes(body)
    region = patch.pop("default_region", None)
    if "extension" in patch:
        await _check_extension_free(session, patch["extension"], employee.id)
    await _check_outbound_number(session, patch.get("outbound_number_id"))
    if "phones" in patch:
        employee.phones = _phones(body.phones or [], region)
    if "emails" in patch:
        employee.emails = _emails(body.emails or [])
    if "rights" in patch:
        employee.rights = _rights(body.rights or [])
    if patch.get("is_admin") is False or patch.get("active") is False:
        await _keep_an_admin(session, employee)
    _sip_credentials(request, employee, patch)
    for name in ("name", "extension", "is_admin", "can_manage_numbers", "active", "outbound_number_id"):
        # null means "unchanged" for the fields that cannot be empty; extension, outbound_number_id: null removes it.
        if name in patch and (patch[name] is not None or name in ("extension", "outbound_number_id")):
            setattr(employee, name, patch[name])
    await session.commit()
    await session.refresh(employee)
    await config_changed(request, "employees")
    return employee_out(employee)
