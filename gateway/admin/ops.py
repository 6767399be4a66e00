"""Operations endpoints of the admin port: liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway import metrics

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """200 once SIP is listening, 503 before (a load balancer's readiness probe)."""
    ready = request.app.state.sip_ready
    if ready():
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "starting", "detail": "SIP transports are not listening yet"}, status_code=503)


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Every gateway_* collector in the Prometheus text format."""
    registry = getattr(request.app.state, "metrics_registry", None)
    body, content_type = metrics.render(*([registry] if registry is not None else []))
    return Response(content=body, media_type=content_type)
