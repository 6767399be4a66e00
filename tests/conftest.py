"""Shared fixtures: a real PostgreSQL for the whole test session, and fresh databases per test.

- `postgres`: the session's cluster (tests.helpers.realservers.Postgres), started once, stopped by PID.
- `pg_url`: a new PostgreSQL database migrated to head, for this test only (postgresql+asyncpg URL).
- `fresh_pg_url(migrated=False, driver="asyncpg")`: a factory; each call CREATEs another database.
- `sqlite_url`: a new SQLite file migrated to head, for this test only (sqlite+aiosqlite URL).
- `db_url`: `sqlite_url` and `pg_url` in turn (the test runs once per backend).

Migrated databases are copies of one template migrated once per session, so they cost a file copy
(SQLite) or a CREATE DATABASE ... TEMPLATE (PostgreSQL), not a migration run.
If PostgreSQL cannot start, every test that needs it errors with the server's log: nothing is skipped.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.storage.session import upgrade_database
from tests.helpers.realservers import Postgres, private_dir, start_postgres, stop_postgres

_sqlite_files = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's throwaway PostgreSQL cluster on 127.0.0.1 (user postgres, no password)."""
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture(scope="session")
def pg_template_db(postgres: Postgres) -> str:
    """The name of a database migrated to head once per session; tests get copies of it."""
    name = postgres.create_database("template_gateway")
    upgrade_database(postgres.url(name, driver="psycopg"))
    return name


@pytest.fixture
def fresh_pg_url(postgres: Postgres, request: pytest.FixtureRequest) -> Callable[..., str]:
    """A factory of new PostgreSQL databases: `fresh_pg_url(migrated=False, driver="asyncpg") -> url`."""

    def make(*, migrated: bool = False, driver: str = "asyncpg") -> str:
        template = request.getfixturevalue("pg_template_db") if migrated else None
        return postgres.url(postgres.create_database("test", template=template), driver=driver)

    return make


@pytest.fixture
def pg_url(fresh_pg_url: Callable[..., str]) -> str:
    """A new PostgreSQL database, migrated to head, owned by this test (postgresql+asyncpg URL)."""
    return fresh_pg_url(migrated=True)


@pytest.fixture(scope="session")
def _sqlite_dir() -> Iterator[Path]:
    directory = private_dir("sqlite-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_template(_sqlite_dir: Path) -> Path:
    """A SQLite file migrated to head once per session; tests get copies of it."""
    path = _sqlite_dir / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def fresh_sqlite_url(_sqlite_dir: Path, request: pytest.FixtureRequest) -> Callable[..., str]:
    """A factory of new SQLite files: `fresh_sqlite_url(migrated=False) -> sqlite+aiosqlite URL`."""

    def make(*, migrated: bool = False) -> str:
        path = _sqlite_dir / f"test-{next(_sqlite_files)}.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"

    return make


@pytest.fixture
def sqlite_url(fresh_sqlite_url: Callable[..., str]) -> str:
    """A new SQLite database file, migrated to head, owned by this test (sqlite+aiosqlite URL)."""
    return fresh_sqlite_url(migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database owned by this test, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
