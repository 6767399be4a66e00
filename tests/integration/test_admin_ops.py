"""The admin app factory in-process: /healthz follows SIP readiness, /metrics renders the registry,
extra routers and state plug in."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request

from gateway import metrics
from gateway.admin.app import create_admin_app


async def _get(app: object, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        return await client.get(path)


async def test_healthz_is_503_until_sip_listens() -> None:
    ready = {"sip": False}
    app = create_admin_app(sip_ready=lambda: ready["sip"])
    before = await _get(app, "/healthz")
    assert before.status_code == 503 and "not listening" in before.json()["detail"]
    ready["sip"] = True
    after = await _get(app, "/healthz")
    assert after.status_code == 200 and after.json() == {"status": "ok"}


async def test_metrics_render_the_gateway_registry() -> None:
    calls = metrics.CallStats()
    calls.active, calls.answered = 3, 7
    calls.observe_setup(0.02)
    registry = metrics.gateway_registry({"requests_received.INVITE": 5, "requests_received.FOO": 2,
                                         "responses_sent.2xx": 4, "transactions_timed_out": 1},
                                        lambda: 2, calls, lambda: True)
    app = create_admin_app(sip_ready=lambda: True, state={"metrics_registry": registry})
    response = await _get(app, "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'gateway_sip_requests_total{direction="in",method="INVITE"} 5.0' in text
    assert 'gateway_sip_requests_total{direction="in",method="OTHER"} 2.0' in text  # bounded labels
    assert 'gateway_sip_responses_total{direction="out",status_class="2xx"} 4.0' in text
    assert "gateway_sip_transaction_timeouts_total 1.0" in text
    assert "gateway_calls_active 3.0" in text
    assert 'gateway_calls_total{outcome="answered"} 7.0' in text
    assert 'gateway_call_setup_seconds_bucket{le="0.025"} 1.0' in text
    assert "gateway_registrations_active 2.0" in text
    assert "gateway_sip_listening 1.0" in text


async def test_extra_routers_and_state_plug_in() -> None:
    router = APIRouter()

    @router.get("/numbers")
    async def numbers(request: Request) -> dict[str, str]:
        return {"store": request.app.state.store}

    app = create_admin_app(routers=[router], state={"store": "crm"}, title="custom")
    assert (await _get(app, "/numbers")).json() == {"store": "crm"}
    assert app.title == "custom"
