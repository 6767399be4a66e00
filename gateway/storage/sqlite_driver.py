"""SQLite for the async engine with one thread round trip per statement.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes four
such calls per statement (open a cursor, execute, fetch, close) plus a rollback each time a pooled
connection is returned, committed or not. Each round trip is a queue put, a thread wake-up and a
self-pipe write back to the event loop, fought over under the GIL: on the call path they cost more
than the statements themselves. This adapter runs a statement and reads its whole result in one
round trip, and skips the rollback of a connection that ran nothing since its last commit or rollback
(sqlite3's own rollback does nothing then). Everything else is SQLAlchemy's aiosqlite dialect.

Inline mode (`one_trip_dbapi(inline=True)`, for the engines on the call path): even one round trip to
the thread costs more CPU than the statement (a queue put, a thread wake-up, two GIL hand-overs, a
self-pipe write), about 5 ms of CPU per call on the CRM path. An inline connection runs its statements
on the event loop's thread instead: a statement on a local WAL file takes microseconds. It must never
block the loop, so it never waits for a lock inside SQLite (busy_timeout 0): a statement that finds the
database locked is tried again after an asyncio sleep, until `BUSY_WAIT` seconds have passed, as
SQLite's own busy handler would. Its commits never checkpoint (the checkpoint fsyncs the file): every
`CHECKPOINT_EVERY` commits, a passive checkpoint runs on the connection's thread.

Used by `gateway.storage.session.make_engine` through `create_async_engine(module=...)`, the public
way to give a dialect another DBAPI module. It reaches into aiosqlite's `Connection._execute` and
`_conn`, as SQLAlchemy's own adapter does (`_conn`, `_tx`).
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any], int, int | None]
_T = TypeVar("_T")

#: How long an inline statement keeps trying a locked database (as `PRAGMA busy_timeout` would).
BUSY_WAIT = 5.0
#: An inline connection's commits between two passive checkpoints (run on its thread).
CHECKPOINT_EVERY = 500
_FIRST_RETRY, _LONGEST_RETRY = 0.001, 0.05


def _run_statement(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: execute, read every row, close; what the adapter keeps of the cursor."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement, rows, description and counts come back in one round trip."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        # No aiosqlite cursor to open: `_run_statement` opens and closes its own on the thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    async def _async_soft_close(self) -> None:
        return None  # the rows are already here and the thread's cursor is closed

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._run(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._run(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run(self, operation: str, parameters: Any, *, many: bool) -> None:
        adapt = cast(OneTripConnection, self._adapt_connection)
        async with adapt._execute_mutex:
            adapt.ran_since_end = True  # before: a statement that fails may still have opened a transaction
            description, rows, rowcount, lastrowid = await adapt.call(
                _run_statement, self._connection._conn, operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """aiosqlite's adapter with `OneTripCursor` and no rollback round trip when nothing ran; `inline`:
    statements run on the event loop's thread, never waiting inside SQLite (see the module's doc)."""

    __slots__ = ("ran_since_end", "inline", "_commits")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any, *, inline: bool = False) -> None:
        super().__init__(dbapi, connection)
        self.ran_since_end = False
        self.inline = inline
        self._commits = 0

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` with the sqlite3 connection: on its thread, or inline (retried while locked)."""
        if not self.inline:
            return await self._connection._execute(function, *args)
        return await run_inline(function, *args)

    def rollback(self) -> None:
        if not self.ran_since_end:
            return
        if self.inline and self._connection._connection:
            self._end(self._connection._conn.rollback)
        else:
            super().rollback()
        self.ran_since_end = False

    def commit(self) -> None:
        if self.inline and self._connection._connection:
            self._end(self._connection._conn.commit)
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                self._checkpoint()
        else:
            super().commit()
        self.ran_since_end = False

    def _end(self, finish: Callable[[], None]) -> None:
        try:
            await_(self.call(finish))
        except Exception as error:
            self._handle_exception(error)

    def _checkpoint(self) -> None:
        """A passive checkpoint on the connection's thread: it waits for nobody, and its fsync never
        holds up the loop. A checkpoint that cannot run now is tried at the next round."""
        try:
            await_(self._connection._execute(
                _run_statement, self._connection._conn, "PRAGMA wal_checkpoint(PASSIVE)", None, False))
        except sqlite3.Error:
            pass


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module the engine is given: aiosqlite's, connecting with `OneTripConnection`."""

    def __init__(self, aiosqlite_module: Any, sqlite_module: Any, *, inline: bool = False) -> None:
        super().__init__(aiosqlite_module, sqlite_module)
        self.inline = inline

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        creator_fn = kw.pop("async_creator_fn", None)
        pending = creator_fn(*arg, **kw) if creator_fn else self.aiosqlite.connect(*arg, **kw)
        if not creator_fn:
            pending._thread.daemon = True  # as SQLAlchemy's adapter: never keep the process alive
        return OneTripConnection(self, await_(pending), inline=self.inline)


def one_trip_dbapi(*, inline: bool = False) -> OneTripDbapi:
    """The module to pass as `create_async_engine(..., module=...)` for a sqlite+aiosqlite URL; `inline`:
    statements on the event loop's thread (see the module's doc)."""
    return OneTripDbapi(aiosqlite, sqlite3, inline=inline)


async def run_inline(function: Callable[..., _T], *args: Any) -> _T:
    """`function(*args)` on the event loop's thread; while the database is locked it is tried again
    after an asyncio sleep, until `BUSY_WAIT` seconds have passed (as SQLite's busy handler would,
    without blocking the loop)."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + BUSY_WAIT, _FIRST_RETRY
    while True:
        try:
            return function(*args)
        except sqlite3.OperationalError as error:
            if not _locked(error) or loop.time() >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LONGEST_RETRY)


def _locked(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock; trying again may succeed."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error)
