"""Errors of the admin API: helpers that build 4xx answers with a message saying what to fix, and
the exception handlers that turn domain errors into them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from gateway.crm_bridge.backend import CrmError, ItemNotFound
from gateway.crm_bridge.rights import AccessDenied

log = logging.getLogger(__name__)

#: What a database that is down or restarting raises: the driver's lost or refused connection (asyncpg's
#: refused connect comes through as a bare ConnectionRefusedError, a connection the server closed as a
#: DBAPIError that SQLAlchemy marks `connection_invalidated`).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (DBAPIError, ConnectionError)


def not_found(what: str, ident: object) -> HTTPException:
    """404 for a resource named in the path."""
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} {ident} not found")


def invalid(message: str) -> HTTPException:
    """422 for a body that is well-formed but refers to something wrong (an unknown id, a bad phone)."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=message)


def conflict(message: str) -> HTTPException:
    """409 for a value that clashes with existing data (a duplicate name, number or extension)."""
    return HTTPException(status.HTTP_409_CONFLICT, detail=message)


def forbidden(message: str) -> HTTPException:
    """403 with the reason."""
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=message)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A unique or foreign-key constraint caught a race the route's own checks could not see.
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={"detail": "the change conflicts with existing data (a duplicate value or a row "
                           "that was just removed); reload and try again"},
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    lost = isinstance(exc, OperationalError | InterfaceError) or getattr(exc, "connection_invalidated", False)
    if isinstance(exc, DBAPIError) and not lost:
        log.error("admin API %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content={"detail": "internal error"})
    # Transient, not a bug: one line in the log (no traceback per request) and an answer that says so.
    log.warning("admin API %s %s: database unavailable (%s)", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"},
        content={"detail": "the database is unavailable right now; try again in a few seconds"},
    )


async def _access_denied(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_403_FORBIDDEN, content={"detail": str(exc)})


async def _item_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})


async def _crm_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": str(exc)})


# Write-only fields: a 422 never echoes what was sent in them (FastAPI's errors quote the input).
# trunk_password: the field moved to /trunks (as `secret`); a request still sending it gets a 422 too.
SECRET_FIELDS = frozenset({"sip_secret", "trunk_password", "secret"})
_REDACTED = "***"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _REDACTED if k in SECRET_FIELDS else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def redacted_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's error list with every secret field's input replaced by ***."""
    cleaned = []
    for error in errors:
        error = dict(error)
        if "input" in error:
            is_secret = any(part in SECRET_FIELDS for part in error.get("loc", ()))
            error["input"] = _REDACTED if is_secret else _redact(error["input"])
        cleaned.append(error)
    return cleaned


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": jsonable_encoder(redacted_errors(exc.errors()))})


def install_error_handlers(app: FastAPI) -> None:
    """Map storage and CRM errors to 409/403/404/422 answers (503 while the database is unavailable)
    on `app`, and keep secrets out of 422s."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(AccessDenied, _access_denied)
    app.add_exception_handler(ItemNotFound, _item_not_found)
    app.add_exception_handler(CrmError, _crm_error)
