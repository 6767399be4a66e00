"""Assembly of the admin API's CRM and configuration routers, for `create_admin_app` to include.

Usage (what `build_app` does)::

    app = create_admin_app(sip_ready=..., routers=crm_routers(), state={...})
    install(app, sessionmaker)          # session factory + error handlers
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.deps import set_sessionmaker
from gateway.admin.errors import install_error_handlers

_AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"description": "missing, invalid or revoked bearer token"},
    403: {"description": "the token's role lacks the right for this action"},
}


def crm_routers() -> list[APIRouter]:
    """Every router of the admin API's configuration and CRM resources (all need a bearer token)."""
    from gateway.admin.routes import (
        calls,
        card,
        catalog,
        crm,
        decisions,
        employees,
        items,
        mail,
        mailboxes,
        numbers,
        queues,
        security,
        simulate,
        tokens,
        trunks,
    )

    routers = [tokens.router, employees.router, numbers.router, queues.router, crm.router, catalog.router,
               items.router, decisions.router, simulate.router, calls.router, mailboxes.router, mail.router,
               trunks.router, card.router, security.router]
    for router in routers:
        router.responses = {**_AUTH_RESPONSES, **router.responses}
    return routers


def install(app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Prepare `app` for the routers of :func:`crm_routers`: database sessions and error answers; and
    serve the web pages over them (/ui, gateway.web)."""
    from gateway.web.routes import install_web

    set_sessionmaker(app, sessionmaker)
    install_error_handlers(app)
    install_web(app)


def build_app(sessionmaker: async_sessionmaker[AsyncSession], **admin_app_options: Any) -> FastAPI:
    """The admin app (ops endpoints + these routers) over `sessionmaker`, as the gateway builds it.

    `admin_app_options` go to `create_admin_app` (e.g. `sip_ready`, `state`).
    """
    from gateway.admin.app import create_admin_app

    app = create_admin_app(routers=crm_routers(), **admin_app_options)
    install(app, sessionmaker)
    return app
