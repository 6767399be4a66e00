"""Bearer-token authentication and the three roles of the admin API (SPEC T2).

A token is shown once, when it is created; only its SHA-256 is stored, so a database leak does not
leak working credentials. Roles: *admin* (everything), *number manager* (an employee holding the
manage-numbers right: may change numbers and their CRM settings), *employee* (read-only numbers,
without secrets; CRM items per their item rights).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.deps import SessionDep
from gateway.storage.models import ApiToken, Employee

TOKEN_PREFIX = "gwt_"
_bearer = HTTPBearer(auto_error=False, description="an API token created with POST /tokens")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def new_token() -> str:
    """A fresh random API token (256 bits), recognisable by its prefix in logs and secret scanners."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: lowercase SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_token(session: AsyncSession, employee_id: int, name: str) -> tuple[ApiToken, str]:
    """Add an ApiToken row for `employee_id` (not committed); return it with the plain token."""
    plain = new_token()
    row = ApiToken(employee_id=employee_id, token_hash=hash_token(plain), name=name,
                   created_at=datetime.now(UTC))
    session.add(row)
    await session.flush()
    return row, plain


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    employee_id: int
    name: str
    is_admin: bool
    can_manage_numbers: bool
    token_id: int

    @property
    def may_manage_numbers(self) -> bool:
        """T2: admins and holders of the manage-numbers right."""
        return self.is_admin or self.can_manage_numbers


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers=_CHALLENGE)


async def current_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Resolve the bearer token of the request to its employee, or answer 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    row = (await session.execute(
        select(ApiToken, Employee)
        .join(Employee, Employee.id == ApiToken.employee_id)
        .where(ApiToken.token_hash == hash_token(credentials.credentials))
    )).first()
    if row is None:
        raise _unauthorized("invalid API token")
    token, employee = row
    if token.revoked_at is not None:
        raise _unauthorized("this API token was revoked; ask an admin for a new one")
    if not employee.active:
        raise _unauthorized("the employee owning this API token is deactivated")
    return Principal(employee_id=employee.id, name=employee.name, is_admin=employee.is_admin,
                     can_manage_numbers=employee.can_manage_numbers, token_id=token.id)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    """Only administrators pass; others get 403 with the reason."""
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this action needs an administrator")
    return principal


def require_number_manager(principal: CurrentPrincipal) -> Principal:
    """T2: administrators and employees holding the manage-numbers right pass."""
    if not principal.may_manage_numbers:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="this action needs an administrator or the 'manage numbers' right",
        )
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
NumberManager = Annotated[Principal, Depends(require_number_manager)]
