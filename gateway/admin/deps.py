"""Request-scoped dependencies of the admin API: the database session and pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# Row ids are 32-bit everywhere we accept them: a bigger value can never name a row, and letting it
# through would make SQLite/PostgreSQL raise an overflow (a 5xx) instead of a clean 404/422.
MAX_ID = 2_147_483_647
MAX_PAGE = 200

_STATE_KEY = "admin_sessionmaker"


def set_sessionmaker(app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Give the admin routes of `app` the sessionmaker they open their unit of work with."""
    setattr(app.state, _STATE_KEY, sessionmaker)


def sessionmaker_of(request: Request) -> async_sessionmaker[AsyncSession]:
    """The sessionmaker installed on the app serving `request`."""
    maker = getattr(request.app.state, _STATE_KEY, None)
    if maker is None:
        raise RuntimeError("admin API used before gateway.admin.api.install(app, sessionmaker)")
    return maker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; routes commit explicitly at the end of a successful write."""
    async with sessionmaker_of(request)() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="row id")]


@dataclass(frozen=True)
class PageParams:
    """`limit`/`offset` of a list request, already bounded."""

    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE} rows")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="rows to skip")] = 0,
) -> PageParams:
    """Pagination query parameters shared by every list endpoint."""
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]
