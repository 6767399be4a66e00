"""Engines, sessions and schema migrations for the gateway database.

The application talks to the database through async drivers (aiosqlite, asyncpg, psycopg); Alembic
migrations run on the matching sync driver in a worker thread, so `migrate()` can be awaited from the
running event loop and works from any working directory (the scripts are found next to the package).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gateway.storage.sqlite_driver import one_trip_dbapi

ALEMBIC_VERSION_TABLE = "alembic_version"

_SYNC_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}


DEFAULT_PORTS = {"postgresql": 5432}
CONNECT_TIMEOUT = 10  # seconds, for the start-up migration's PostgreSQL connection
_URL_EXAMPLES = 'sqlite+aiosqlite:///./gateway.db or postgresql+asyncpg://user:password@host:5432/dbname'


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; the message says why and never contains its password."""


def check_url(url: str) -> URL:
    """Parse `url` and check its driver is one the gateway supports, or raise `DatabaseUrlError`.

    Cheap and offline (nothing is connected), so a configuration can be rejected before start-up.
    """
    try:
        parsed = make_url(url)
    except (ValueError, sa.exc.ArgumentError):
        # The URL is not echoed back: it may carry a password.
        raise DatabaseUrlError(f"not a valid database URL (check the port is a number); write it like "
                               f"{_URL_EXAMPLES}") from None
    if parsed.drivername not in _ASYNC_DRIVERS:
        raise DatabaseUrlError(
            f"unsupported database driver {parsed.drivername!r} in {safe_url(parsed)}; the gateway supports "
            f"SQLite and PostgreSQL ({', '.join(sorted(_ASYNC_DRIVERS))}), e.g. {_URL_EXAMPLES}"
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise DatabaseUrlError(f"port {parsed.port} in {safe_url(parsed)} must be from 1 to 65535")
    return parsed


def safe_url(url: str | URL) -> str:
    """`url` fit for messages and logs: the password replaced by ***."""
    return make_url(url).render_as_string(hide_password=True)


def connection_problem(url: str | URL, error: BaseException) -> str:
    """A one-line explanation of why the database at `url` could not be opened, without its password.

    Names the server (host:port) for PostgreSQL and the file for SQLite, then the driver's own reason.
    """
    parsed = make_url(url)
    reason = _first_line(error)
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    if parsed.get_backend_name() == "sqlite":
        where = parsed.database or ":memory:"
        return (f"cannot open the SQLite database {where!r} ({reason}); check that its directory exists "
                "and is writable")
    host = parsed.host or "localhost"
    port = parsed.port or DEFAULT_PORTS.get(parsed.get_backend_name(), 0)
    return (f"cannot connect to the {parsed.get_backend_name()} server at {host}:{port} as "
            f"{parsed.username or '(no user)'} ({reason}); check that the server runs and the host, port, "
            "user, password and database name are right")


def _first_line(error: BaseException) -> str:
    # SQLAlchemy wraps the driver error; its own text adds a "Background on this error" link.
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0].strip()


def _with_driver(url: str | URL, drivers: dict[str, str], purpose: str) -> URL:
    parsed = make_url(url)
    name = parsed.drivername
    if name not in drivers:
        raise ValueError(
            f"unsupported database URL driver {name!r} for {purpose}: use one of {', '.join(sorted(drivers))}"
        )
    return parsed.set(drivername=drivers[name])


def sync_url(url: str | URL) -> URL:
    """The URL with a synchronous driver (sqlite / postgresql+psycopg), as Alembic needs."""
    return _with_driver(url, _SYNC_DRIVERS, "migrations")


def async_url(url: str | URL) -> URL:
    """The URL with an asyncio driver (sqlite+aiosqlite / postgresql+asyncpg / postgresql+psycopg)."""
    return _with_driver(url, _ASYNC_DRIVERS, "the async engine")


def _enable_sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLite ignores FOREIGN KEY clauses (and ON DELETE) unless each connection turns them on.
    cursor = dbapi_connection.cursor()
    inline = getattr(dbapi_connection, "inline", False)
    if inline:
        cursor.execute("PRAGMA busy_timeout=0")  # first: sqlite3.connect's default waits 5 s
    cursor.execute("PRAGMA foreign_keys=ON")
    # Every call writes its call log and CRM entries: in WAL mode readers (the next call's lookup) never
    # wait for a writer, and a commit no longer waits for an fsync of its own (NORMAL: durable at the
    # next checkpoint; a power cut may lose the last commits, never corrupt the file). Writers queue for
    # up to 5 s instead of failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    if inline:
        # On the event loop's thread: never wait inside SQLite (the adapter retries after an asyncio
        # sleep), and never checkpoint on commit (its fsync; the adapter checkpoints on the thread).
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    else:
        cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str | URL, *, inline_sqlite: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url` (sync driver names are switched to their async twin).

    On SQLite every connection enforces foreign keys, and runs each statement in one round trip to its
    thread (`gateway.storage.sqlite_driver`), or with `inline_sqlite` on the event loop's thread, never
    waiting for a lock there (for the call path's short statements; an admin's listing stays threaded).
    Extra keyword arguments go to `create_async_engine`.
    """
    target = async_url(url)
    if target.drivername == "sqlite+aiosqlite" and "module" not in kwargs:
        # One thread round trip per statement instead of four or five (see sqlite_driver).
        kwargs["module"] = one_trip_dbapi(inline=inline_sqlite)
    engine = create_async_engine(target, **kwargs)
    if target.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def make_call_path_engine(url: str | URL) -> AsyncEngine:
    """The engine of the call path's writes (the call journal, the outbox worker): on SQLite one
    connection running its statements inline (see `gateway.storage.sqlite_driver`), so the call path's
    writes queue in the pool instead of contending for SQLite's lock; elsewhere a plain engine."""
    if async_url(url).get_backend_name() == "sqlite":
        return make_engine(url, inline_sqlite=True, pool_size=1, max_overflow=0)
    return make_engine(url)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; objects stay usable after commit (expire_on_commit=False)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def migrations_dir() -> Path:
    """The directory holding Alembic's env.py and versions/ (the top-level `migrations` package)."""
    spec = importlib.util.find_spec("migrations")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location)
            if (candidate / "env.py").is_file():
                return candidate
    # Running from a source tree that is not installed: the repository root is two levels up.
    candidate = Path(__file__).resolve().parents[2] / "migrations"
    if (candidate / "env.py").is_file():
        return candidate
    raise RuntimeError("cannot find the Alembic migrations directory (migrations/env.py)")


def alembic_config(url: str | URL) -> Any:
    """An Alembic Config for `url` that does not depend on the working directory or alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    target = sync_url(url)
    if target.get_backend_name() == "postgresql" and "connect_timeout" not in target.query:
        # Without it an unreachable server fails start-up only after the OS's TCP timeout (minutes).
        target = target.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
    # ConfigParser interpolation treats % specially (it appears in URL-encoded passwords).
    rendered = target.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    config.attributes["database_url"] = target
    config.attributes["configure_logging"] = False
    return config


def upgrade_database(url: str | URL, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` (blocking; see `migrate` for async callers)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str | URL, revision: str = "base") -> None:
    """Run Alembic migrations down to `revision` (blocking); "base" drops every table."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


async def migrate(url: str | URL, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision`, from async code (Alembic runs in a thread)."""
    await asyncio.to_thread(upgrade_database, url, revision)


async def downgrade(url: str | URL, revision: str = "base") -> None:
    """Downgrade the database at `url` to `revision`, from async code (Alembic runs in a thread)."""
    await asyncio.to_thread(downgrade_database, url, revision)


def current_revision(url: str | URL) -> str | None:
    """The Alembic revision the database is at, or None when it was never migrated."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(ALEMBIC_VERSION_TABLE):
                return None
            return connection.execute(sa.text(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}")).scalar()
    finally:
        engine.dispose()


def database_is_new(url: str | URL) -> bool:
    """True when the database holds nothing an operator made: never migrated, or migrated but with no
    employee, number or queue group yet (the first migration's seed rows do not count).

    Blocking and cheap; meant for start-up, before or after `migrate`, to decide whether to seed a demo.
    """
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            tables = ("employees", "numbers", "queue_groups")
            if not all(inspector.has_table(name) for name in tables):
                return True
            for name in tables:
                if connection.execute(sa.text(f"SELECT 1 FROM {name} LIMIT 1")).first() is not None:
                    return False
            return True
    finally:
        engine.dispose()
