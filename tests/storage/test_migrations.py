"""Alembic migrations on SQLite and on a real PostgreSQL: up, down, up again; no drift; seed rows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.storage.models import metadata
from gateway.storage.session import (
    alembic_config,
    current_revision,
    database_is_new,
    downgrade_database,
    migrate,
    sync_url,
    upgrade_database,
)

REPO = Path(__file__).resolve().parents[2]
GATEWAY_TABLES = set(metadata.tables)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def _drift(url: str) -> list[object]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    upgrade_database(empty_db_url)
    assert _tables(empty_db_url) == GATEWAY_TABLES | {"alembic_version"}
    assert current_revision(empty_db_url) == _head(empty_db_url)

    downgrade_database(empty_db_url, "base")
    assert _tables(empty_db_url) & GATEWAY_TABLES == set()
    assert current_revision(empty_db_url) is None

    upgrade_database(empty_db_url)
    assert _tables(empty_db_url) == GATEWAY_TABLES | {"alembic_version"}
    assert current_revision(empty_db_url) == _head(empty_db_url)


def test_models_and_migrations_do_not_drift(empty_db_url: str) -> None:
    """Autogenerate against a freshly migrated database finds nothing to change (types and
    server defaults included): the models and the revisions describe the same schema."""
    upgrade_database(empty_db_url)
    assert _drift(empty_db_url) == []


def test_drift_check_sees_a_difference(empty_db_url: str) -> None:
    """The drift check is able to fail: a database one index short is reported."""
    upgrade_database(empty_db_url)
    engine = sa.create_engine(sync_url(empty_db_url))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_item_phones_normalized"))
    engine.dispose()
    drift = _drift(empty_db_url)
    assert [(d[0], d[1].name) for d in drift if isinstance(d, tuple)] == [
        ("add_index", "ix_item_phones_normalized")
    ]


def test_seed_rows_exist_after_upgrade(empty_db_url: str) -> None:
    upgrade_database(empty_db_url)
    engine = sa.create_engine(sync_url(empty_db_url))
    try:
        with engine.connect() as connection:
            pipelines = connection.execute(sa.text("SELECT name, is_default FROM pipelines")).all()
            sources = connection.execute(
                sa.text("SELECT code, name, standard FROM sources ORDER BY id")
            ).all()
            settings = connection.execute(
                sa.text(
                    "SELECT id, mode, deal_pipeline_id, deal_creation_mode, repeat_sales, legacy_lead_mode,"
                    " allow_email_to_any_address, any_address_creates FROM crm_settings"
                )
            ).all()
            # The seeded ids must not collide with the next row an admin adds (PostgreSQL sequences).
            connection.execute(sa.text("INSERT INTO sources (code, name, standard) VALUES ('FAIR', 'Fair', false)"))
            connection.execute(sa.text("INSERT INTO pipelines (name, is_default) VALUES ('Partners', false)"))
    finally:
        engine.dispose()
    assert [(name, bool(default)) for name, default in pipelines] == [("General", True)]
    assert [(code, name, bool(std)) for code, name, std in sources] == [
        ("CALL", "Call", True), ("EMAIL", "E-mail", True), ("WEB", "Website", True), ("OTHER", "Other", True),
    ]
    assert len(settings) == 1
    row = settings[0]
    assert (row.id, row.mode, row.deal_pipeline_id, row.deal_creation_mode, row.any_address_creates) == (
        1, "classic", None, "contact", "lead",
    )
    assert not any([row.repeat_sales, row.legacy_lead_mode, row.allow_email_to_any_address])


async def test_migrate_from_async_code_in_another_directory(
    fresh_sqlite_url: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`migrate` finds the scripts through the package, not the working directory, and may be awaited."""
    url = fresh_sqlite_url()
    monkeypatch.chdir(tmp_path)
    await migrate(url)
    assert current_revision(url) == _head(url)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


def test_alembic_command_line_uses_alembic_ini(fresh_sqlite_url: Callable[..., str]) -> None:
    """`alembic upgrade head` with the root alembic.ini migrates the database named by GATEWAY_DATABASE_URL."""
    url = fresh_sqlite_url()
    env = {**os.environ, "GATEWAY_DATABASE_URL": url}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        cwd="/", env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert current_revision(url) == _head(url)


def test_database_is_new_until_something_is_configured(empty_db_url: str) -> None:
    assert database_is_new(empty_db_url)
    upgrade_database(empty_db_url)
    assert database_is_new(empty_db_url), "the seed rows alone do not make a database 'used'"
    engine = sa.create_engine(sync_url(empty_db_url))
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO queue_groups (name, strategy) VALUES ('Sales', 'in_order')"))
    engine.dispose()
    assert not database_is_new(empty_db_url)


def test_0002_adds_and_removes_only_the_registrar_bindings_table(empty_db_url: str) -> None:
    """Revision 0002 on its own: up from 0001 adds registrar_bindings and keeps 0001's data, down to
    0001 drops only that table, and up again restores it (so a downgrade loses saved registrations only)."""
    upgrade_database(empty_db_url, "0001")
    assert "registrar_bindings" not in _tables(empty_db_url)
    before = _tables(empty_db_url)
    engine = sa.create_engine(sync_url(empty_db_url))
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO queue_groups (name, strategy) VALUES ('Sales', 'sequential')"))
    upgrade_database(empty_db_url, "0002")
    assert _tables(empty_db_url) == before | {"registrar_bindings"}
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO registrar_bindings (aor, contact, expires_at, call_id, cseq, source_transport,"
            " source_host, source_port, registered_at) VALUES ('1001', 'sip:1001@h', 1e9, 'c', 1, 'udp', 'h', 5062, 1e9)"
        ))
    downgrade_database(empty_db_url, "0001")
    assert _tables(empty_db_url) == before
    assert current_revision(empty_db_url) == "0001"
    upgrade_database(empty_db_url, "0002")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT name FROM queue_groups")).scalars().all() == ["Sales"]
        assert connection.execute(sa.text("SELECT count(*) FROM registrar_bindings")).scalar() == 0
    engine.dispose()
    upgrade_database(empty_db_url)
    assert _drift(empty_db_url) == []
