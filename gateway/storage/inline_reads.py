"""Read-only statements on a SQLite file, run without SQLAlchemy's per-statement machinery.

For the call path's one CRM lookup per call. Through an `AsyncSession` that lookup cost about 190 µs of
CPU, of which SQLite's own part was about 30: the session, its transaction and the pool checkout, the
Core execution context and its result. `InlineReads` holds one sqlite3 connection of its own, in
autocommit (each statement is its own read transaction, so it sees every commit made before it) and
query-only, and runs a statement compiled once (`prepare`) on the event loop's thread, as the inline
driver does (`gateway.storage.sqlite_driver.run_inline`: a locked database is tried again after an
asyncio sleep, never waited for inside SQLite). A failure is raised as SQLAlchemy's
`OperationalError`, as the engine would raise it, so callers handle one kind of database error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, make_url

from gateway.storage.sqlite_driver import run_inline

_DIALECT = sqlite_dialect.dialect()


@dataclass(frozen=True, slots=True)
class PreparedRead:
    """A statement compiled for SQLite: its SQL text and how to lay out its parameters."""

    sql: str
    names: tuple[str, ...]  # the bind parameters in the order of their `?`
    bound: Mapping[str, Any]  # values the statement binds itself (its literals)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] if name in values else self.bound[name] for name in self.names)


def prepare(statement: sa.Executable) -> PreparedRead:
    """`statement` compiled once for `InlineReads.rows`. Refuses what only SQLAlchemy's execution could
    handle: a parameter expanded at run time (`IN` over a list)."""
    compiled = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
    expanding = sorted(name for name, bind in compiled.binds.items() if bind.expanding)
    if expanding:
        raise ValueError(f"a prepared read cannot expand parameters at run time: {', '.join(expanding)}")
    return PreparedRead(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


def _all_rows(connection: sqlite3.Connection, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
    return connection.execute(sql, parameters).fetchall()


class InlineReads:
    """One query-only connection to a SQLite file, its statements run on the event loop's thread."""

    def __init__(self, path: str) -> None:
        # Made on the loop's thread, used only there; `check_same_thread` off so closing it from a
        # shutdown hook on another thread is not an error.
        self._connection: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA busy_timeout=0")  # never wait inside SQLite: run_inline retries
        self._connection.execute("PRAGMA query_only=ON")

    @classmethod
    def for_url(cls, url: str | URL) -> InlineReads | None:
        """Reads on the SQLite file of `url`; None for another database or an in-memory one (whose
        contents another connection would not see)."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return cls(parsed.database)

    async def rows(self, prepared: PreparedRead, values: Mapping[str, Any]) -> list[Any]:
        """Every row of `prepared` with `values` for its parameters."""
        connection = self._connection
        if connection is None:
            raise sa.exc.OperationalError(prepared.sql, None, sqlite3.ProgrammingError("the inline reads are closed"))
        parameters = prepared.parameters(values)
        try:
            return await run_inline(_all_rows, connection, prepared.sql, parameters)
        except sqlite3.Error as error:
            raise sa.exc.OperationalError(prepared.sql, parameters, error) from error

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
