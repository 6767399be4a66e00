"""Fixtures of the storage tests (the databases themselves come from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """A new, empty (never migrated) database, on each backend in turn."""
    if request.param == "sqlite":
        return request.getfixturevalue("fresh_sqlite_url")()
    return request.getfixturevalue("fresh_pg_url")()
