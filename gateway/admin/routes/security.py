"""/security/bans: the addresses the source guard blocks now (`gateway.guard.policy`), and unbanning.

Admins only. The guard lives in the SIP process: the admin app reads it through ``app.state.source_guard``
and its clock (``app.state.sip_clock``, the SIP loop's monotonic time).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Request

from gateway.admin.auth import AdminPrincipal
from gateway.admin.errors import invalid, not_found
from gateway.admin.schemas.common import Out
from gateway.guard.policy import Block, SourceGuard
from gateway.guard.settings import GuardSettings

router = APIRouter(prefix="/security", tags=["security"])

AddressPath = Annotated[str, Path(max_length=64, description="an IPv4 or IPv6 address, e.g. 203.0.113.7")]


class BanOut(Out):
    """One blocked address: why, and for how much longer."""

    address: str
    rule: str  # auth-failures | rate | scanner-agent
    blocked_for_seconds: float
    seconds_left: float


def _guard(request: Request) -> tuple[SourceGuard, Callable[[], float]]:
    guard = getattr(request.app.state, "source_guard", None)
    clock = getattr(request.app.state, "sip_clock", None)
    if guard is None or clock is None:
        # An admin app without SIP in its process (tests, tools): a guard that has blocked nobody.
        return SourceGuard(GuardSettings()), lambda: 0.0
    return guard, clock


def _out(block: Block, now: float) -> BanOut:
    return BanOut(address=block.address, rule=block.rule, blocked_for_seconds=round(block.until - block.since, 1),
                  seconds_left=round(max(0.0, block.until - now), 1))


@router.get("/bans", response_model=list[BanOut], summary="Addresses blocked now")
async def list_bans(request: Request, admin: AdminPrincipal) -> list[BanOut]:
    """Admins only. Soonest released first."""
    guard, clock = _guard(request)
    now = clock()
    return [_out(block, now) for block in guard.blocks(now)]


@router.delete("/bans/{address}", response_model=BanOut, summary="Lift the block on an address")
async def unban(address: AddressPath, request: Request, admin: AdminPrincipal) -> BanOut:
    """Admins only. Its failed attempts and rate counts are forgotten too; 404 when it is not blocked."""
    try:
        host = str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        raise invalid(f"address: {address!r} is not an IP address; write one such as 203.0.113.7") from None
    guard, clock = _guard(request)
    now = clock()
    block = guard.unblock(host, now)
    if block is None:
        raise not_found("blocked address", host)
    return _out(block, now)
