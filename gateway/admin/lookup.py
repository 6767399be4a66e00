"""Loading rows named by a request and normalising the phones and emails it carries."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.errors import invalid, not_found
from gateway.crm_bridge import identity

M = TypeVar("M")

# Without a default region only numbers written with +country code can be read ("ZZ" = unknown).
NO_REGION = "ZZ"


async def get_or_404(session: AsyncSession, model: type[M], ident: int, what: str) -> M:
    """The row `ident` of `model`, or 404 naming `what` (for ids in the path)."""
    row = await session.get(model, ident)
    if row is None:
        raise not_found(what, ident)
    return row


async def referenced(session: AsyncSession, model: type[M], ident: int, what: str, field: str) -> M:
    """The row a body field refers to, or 422 naming the field (for ids in the body)."""
    row = await session.get(model, ident)
    if row is None:
        raise invalid(f"{field}: {what} {ident} not found")
    return row


def phone_or_422(raw: str, region: str | None, field: str) -> str:
    """`raw` in E.164, or 422 saying how to write it."""
    try:
        normalized = identity.normalize_phone(raw, region or NO_REGION)
    except Exception:  # noqa: BLE001 - any parse failure is the caller's bad input, said below
        normalized = None
    if not normalized:
        hint = f"a valid number in region {region}" if region else "international form (+country code) or give default_region"
        raise invalid(f"{field}: {raw!r} is not a phone number; write it in {hint}")
    return normalized


def email_or_422(raw: str, field: str) -> str:
    """`raw` normalised (SPEC O5), or 422."""
    try:
        normalized = identity.normalize_email(raw)
    except Exception:  # noqa: BLE001 - any parse failure is the caller's bad input, said below
        normalized = None
    if not normalized:
        raise invalid(f"{field}: {raw!r} is not an email address; write it as name@example.com")
    return normalized


def changes(body: Any) -> dict[str, Any]:
    """The fields a PATCH body actually sets (omitted fields stay as they are)."""
    return body.model_dump(exclude_unset=True)
