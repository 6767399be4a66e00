"""/tokens and /me: API tokens (admins issue and revoke them) and the caller's own identity."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status
from sqlalchemy import func, select

from gateway.admin.auth import AdminPrincipal, CurrentPrincipal, issue_token
from gateway.admin.deps import IdPath, PageDep, SessionDep
from gateway.admin.lookup import get_or_404, referenced
from gateway.admin.schemas.common import Page
from gateway.admin.schemas.tokens import TokenCreate, TokenCreated, TokenOut, WhoAmI
from gateway.storage.models import ApiToken, Employee

router = APIRouter(tags=["tokens"])


@router.get("/me", response_model=WhoAmI, summary="Who the token belongs to")
async def who_am_i(principal: CurrentPrincipal) -> WhoAmI:
    """The employee and role behind the bearer token."""
    return WhoAmI(employee_id=principal.employee_id, name=principal.name, is_admin=principal.is_admin,
                  can_manage_numbers=principal.can_manage_numbers)


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED,
             summary="Create an API token (shown once)")
async def create_token(body: TokenCreate, session: SessionDep, admin: AdminPrincipal) -> TokenCreated:
    """Admins only. The plain token is in this answer and nowhere else: store it now."""
    employee = await referenced(session, Employee, body.employee_id, "employee", "employee_id")
    row, plain = await issue_token(session, employee.id, body.name)
    await session.commit()
    return TokenCreated(id=row.id, employee_id=row.employee_id, name=row.name, created_at=row.created_at,
                        revoked_at=row.revoked_at, token=plain)


@router.get("/tokens", response_model=Page[TokenOut], summary="List API tokens (without secrets)")
async def list_tokens(session: SessionDep, page: PageDep, admin: AdminPrincipal) -> Page[TokenOut]:
    """Admins only."""
    total = await session.scalar(select(func.count()).select_from(ApiToken)) or 0
    rows = await session.scalars(select(ApiToken).order_by(ApiToken.id).limit(page.limit).offset(page.offset))
    return Page(items=[TokenOut.model_validate(r) for r in rows], total=total, limit=page.limit,
                offset=page.offset)


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke an API token")
async def revoke_token(token_id: IdPath, session: SessionDep, admin: AdminPrincipal) -> TokenOut:
    """Admins only. Revoking twice keeps the first revocation time."""
    row = await get_or_404(session, ApiToken, token_id, "API token")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.commit()
    return TokenOut.model_validate(row)
