"""tests/web: the admin API fixtures (a migrated SQLite per test, users with tokens) for the fast
in-process tests of the web pages; the browser tests have their own kit (browser_kit.py)."""

from tests.admin.conftest import (  # noqa: F401  (fixtures)
    admin,
    app,
    client,
    db_url,
    manager,
    migrated_template,
    plain,
    sessionmaker,
)
