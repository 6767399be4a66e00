"""A database that is down or restarting gives 503 with Retry-After, not a 500 and a traceback per request;
a database error that is a bug stays a 500 (issue 10: the admin API survives a PostgreSQL outage)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from gateway.admin.api import build_app
from gateway.admin.errors import install_error_handlers
from gateway.storage.session import make_engine, make_sessionmaker


async def test_a_database_server_that_is_down_is_503_saying_so() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once (a stopped PostgreSQL).
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/gateway")
    try:
        app = build_app(make_sessionmaker(engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
            answer = await http.get("/employees", headers={"Authorization": "Bearer gwt_whatever"})
    finally:
        await engine.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert "database is unavailable" in answer.json()["detail"]


def _raises(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    async def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(("error", "expected"), [
    (OperationalError("SELECT 1", {}, OSError("server closed the connection")), 503),
    (DBAPIError("SELECT 1", {}, Exception("connection was closed"), connection_invalidated=True), 503),
    (ConnectionRefusedError(111, "Connection refused"), 503),
    (ProgrammingError("SELEC 1", {}, Exception("syntax error")), 500),
])
async def test_connection_losses_are_503_and_other_database_errors_500(error: Exception, expected: int) -> None:
    transport = httpx.ASGITransport(app=_raises(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        answer = await http.get("/")
    assert answer.status_code == expected, answer.text
    assert "syntax" not in answer.text  # a driver's message never reaches the client
