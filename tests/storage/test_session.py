"""URL handling of gateway.storage.session: async engines for the app, sync drivers for Alembic."""

from __future__ import annotations

import pytest

from gateway.storage.session import async_url, make_engine, sync_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///./gateway.db", "sqlite:///./gateway.db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql+asyncpg://u:p%40ss@db:5432/gw", "postgresql+psycopg://u:p%40ss@db:5432/gw"),
        ("postgresql+psycopg://u@db/gw", "postgresql+psycopg://u@db/gw"),
        ("postgresql://u@db/gw", "postgresql+psycopg://u@db/gw"),
    ],
)
def test_sync_url_picks_a_synchronous_driver(url: str, expected: str) -> None:
    assert sync_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./gateway.db", "sqlite+aiosqlite:///./gateway.db"),
        ("sqlite+aiosqlite:///./gateway.db", "sqlite+aiosqlite:///./gateway.db"),
        ("postgresql://u@db/gw", "postgresql+asyncpg://u@db/gw"),
        ("postgresql+psycopg://u@db/gw", "postgresql+psycopg://u@db/gw"),
    ],
)
def test_async_url_picks_an_asyncio_driver(url: str, expected: str) -> None:
    assert async_url(url).render_as_string(hide_password=False) == expected


def test_unsupported_driver_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"unsupported database URL driver 'mysql\+pymysql'.*sqlite\+aiosqlite"):
        sync_url("mysql+pymysql://u@db/gw")


async def test_make_engine_accepts_a_sync_url_and_turns_on_sqlite_foreign_keys(
    fresh_sqlite_url: object,
) -> None:
    url = fresh_sqlite_url().replace("sqlite+aiosqlite", "sqlite")  # type: ignore[operator]
    engine = make_engine(url)
    try:
        assert engine.url.drivername == "sqlite+aiosqlite"
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await engine.dispose()
