"""The admin API's FastAPI application factory.

Other parts add their routers (numbers, queues, CRM settings) by passing them in, and anything
their handlers need through `state` (read back as ``request.app.state.<name>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI

from gateway.admin import ops


def create_admin_app(
    sip_ready: Callable[[], bool] = lambda: False,
    routers: Iterable[APIRouter] = (),
    state: Mapping[str, Any] | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """Build the admin app: ops endpoints (/healthz, /metrics) plus `routers`.

    `sip_ready` tells /healthz whether SIP is listening; `state` entries become `app.state`
    attributes; `fastapi_options` go to `FastAPI(...)` (title, lifespan, ...).
    """
    options: dict[str, Any] = {"title": "Voice gateway admin API", "version": "0.1.0"}
    options.update(fastapi_options)
    app = FastAPI(**options)
    app.state.sip_ready = sip_ready
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    app.include_router(ops.router)
    for router in routers:
        app.include_router(router)
    return app
