"""Alembic environment: migrates the gateway's one metadata with a synchronous driver.

Async URLs (sqlite+aiosqlite, postgresql+asyncpg, postgresql+psycopg) are converted to their sync twin;
SQLite runs in batch mode because it cannot ALTER most constraints in place.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from gateway.storage.base import UtcDateTime
from gateway.storage.models import metadata
from gateway.storage.session import sync_url

config = context.config

# Only the alembic command line configures logging; the gateway keeps its own when it migrates.
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _database_url() -> sa.URL:
    # A URL handed over by gateway.storage.session wins; then the environment; then alembic.ini.
    url = (
        config.attributes.get("database_url")
        or os.environ.get("GATEWAY_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url in alembic.ini or GATEWAY_DATABASE_URL")
    return sync_url(url)


def run_migrations_offline() -> None:
    """Emit the SQL to stdout instead of running it."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        render_as_batch=url.get_backend_name() == "sqlite",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection (one passed in by the caller, or a new one)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = sa.create_engine(_database_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render gateway column types as plain SQLAlchemy ones, so revisions never import the models."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    # Boolean defaults as sa.true()/sa.false(): a literal 0/1 (what SQLite reflects) fails on PostgreSQL.
    if type_ == "server_default" and isinstance(obj, sa.DefaultClause):
        if isinstance(obj.arg, sa.sql.elements.True_):
            return "sa.true()"
        if isinstance(obj.arg, sa.sql.elements.False_):
            return "sa.false()"
    return False


def _run_on(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
