"""API tokens: created by admins, shown once."""

from __future__ import annotations

from datetime import datetime

from gateway.admin.schemas.common import Name, Out, RowId, Strict


class TokenCreate(Strict):
    """Create a token for an employee (their role decides what it may do)."""

    employee_id: RowId
    name: Name


class TokenOut(Out):
    """A token without its secret."""

    id: int
    employee_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    """The answer to POST /tokens: the only time the plain token is ever shown."""

    token: str


class WhoAmI(Out):
    """The caller of the request and the role their token carries."""

    employee_id: int
    name: str
    is_admin: bool
    can_manage_numbers: bool
