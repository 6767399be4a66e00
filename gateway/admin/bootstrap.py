"""Out-of-band administration: the first administrator and replacement API tokens.

The admin API needs a bearer token, so the very first one (a database without a demo seed) and a
replacement for a lost one cannot come from the API itself. These functions run straight on the
database, for the `gateway admin create` and `gateway token create` commands; tokens are stored
hashed exactly as `POST /tokens` stores them and the plain value is returned once, to be printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import issue_token
from gateway.crm_bridge.identity import normalize_email
from gateway.storage.models import Employee, EmployeeEmail, EmployeeRight
from gateway.storage.models.enums import ItemType, RightLevel

CLI_TOKEN_NAME = "issued by gateway token create"
CLI_ADMIN_TOKEN_NAME = "issued by gateway admin create"


class BootstrapError(ValueError):
    """The request cannot be carried out; the message says what to change."""


@dataclass(frozen=True)
class IssuedToken:
    """A token just created for `employee_id`: `token` is the plain value, shown once and stored nowhere."""

    employee_id: int
    token_id: int
    token: str


async def create_token(
    sessionmaker: async_sessionmaker[AsyncSession], employee_id: int, name: str = CLI_TOKEN_NAME
) -> IssuedToken:
    """A new API token for an existing, active employee (other tokens stay valid)."""
    async with sessionmaker() as session:
        employee = await session.get(Employee, employee_id)
        if employee is None:
            raise BootstrapError(f"employee {employee_id} not found; create an administrator with "
                                 "'gateway admin create --name NAME' instead")
        if not employee.active:
            raise BootstrapError(f"employee {employee_id} ({employee.name}) is deactivated; a token of theirs "
                                 "would be refused. Reactivate them first, or create a new administrator")
        row, plain = await issue_token(session, employee.id, name)
        await session.commit()
        return IssuedToken(employee_id=employee.id, token_id=row.id, token=plain)


async def create_admin(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, email: str | None = None,
    extension: str | None = None,
) -> IssuedToken:
    """A new active administrator (manage-numbers right, every CRM item right at "all") and a token."""
    name = name.strip()
    if not name or len(name) > 200:
        raise BootstrapError("--name must be 1 to 200 characters")
    emails: list[EmployeeEmail] = []
    if email is not None:
        normalized = normalize_email(email)
        if not normalized:
            raise BootstrapError(f"--email {email!r} is not an email address; write it as name@example.com")
        emails.append(EmployeeEmail(value=email.strip(), normalized=normalized))
    async with sessionmaker() as session:
        if extension is not None:
            owner = await session.scalar(select(Employee.id).where(Employee.extension == extension))
            if owner is not None:
                raise BootstrapError(f"extension {extension} already belongs to employee {owner}; choose another")
        employee = Employee(
            name=name, extension=extension, is_admin=True, can_manage_numbers=True, active=True, emails=emails,
            rights=[EmployeeRight(item_type=t.value, view=RightLevel.ALL.value, edit=RightLevel.ALL.value)
                    for t in ItemType],
        )
        session.add(employee)
        await session.flush()
        row, plain = await issue_token(session, employee.id, CLI_ADMIN_TOKEN_NAME)
        await session.commit()
        return IssuedToken(employee_id=employee.id, token_id=row.id, token=plain)
