"""Errors of the admin API: helpers that build 4xx answers with a message saying what to fix, and
the exception handlers that turn domain errors into them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from gateway.crm_bridge.backend import CrmError, ItemNotFound
from gateway.crm_bridge.rights import AccessDenied


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


async def _access_denied(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_403_FORBIDDEN, content={"detail": str(exc)})


async def _item_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})


async def _crm_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": str(exc)})


# Write-only fields: a 422 never echoes what was sent in them (FastAPI's errors quote the input).
SECRET_FIELDS = frozenset({"sip_secret", "trunk_password"})
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
    """Map storage and CRM errors to 409/403/404/422 answers on `app`, and keep secrets out of 422s."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(AccessDenied, _access_denied)
    app.add_exception_handler(ItemNotFound, _item_not_found)
    app.add_exception_handler(CrmError, _crm_error)
