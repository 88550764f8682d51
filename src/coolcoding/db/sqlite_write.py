"""One write statement on SQLite as one thread hop (``Database.write``).

Through SQLAlchemy's asyncio layer a single INSERT or UPDATE on SQLite costs six round trips
into aiosqlite's thread (the pool's check-out and reset, the implicit BEGIN, the statement, its
fetch, the COMMIT) and ~0.8 ms of the server's CPU; a judged ``?wait=true`` job makes two (its
INSERT and the UPDATE with its result). ``SqliteOneWriter`` runs the statement, the fetch of
what it returns and the COMMIT (or the ROLLBACK after an error) in one call on its own thread,
on its own connection with the engine's pragmas (WAL, ``synchronous=NORMAL``, foreign keys, the
busy timeout): ~0.1 ms (bench/README.md, "One hop per SQLite write").

The statement is compiled once with the engine's dialect and its parameters go through the same
bind processors SQLAlchemy applies (the UTC datetime, UUID and JSON types: the row is stored as
SQLAlchemy would store it; ``tests/integration/test_one_write.py`` reads it back through the
ORM). Rows a statement returns are the driver's, unprocessed: only for statements returning
columns without a result processor (ids, counts); others are refused at compile time.

The write lock is held only inside that one call (never across an await), so this connection
is never the "holder" ``SqliteWriters`` looks for. Errors come back as SQLAlchemy's
(``DBAPIError.instance``: ``IntegrityError``, ``OperationalError`` for "database is locked"...),
which the API maps as it does for every other statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from coolcoding.db.raw import WriteResult, compiled_statement


def _pragmas(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """The engine's (engine.py ``_sqlite_pragmas``) on this connection."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


class SqliteOneWriter:
    """A connection on its own thread; each ``execute`` is one statement, one transaction."""

    def __init__(
        self,
        path: str,
        dialect: Dialect,
        busy_timeout_ms: int,
        listeners: list[Callable[[str], None]] | None = None,
    ) -> None:
        self._path = path
        self._dialect = dialect
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None  # made on first use, again after close
        self._conn: sqlite3.Connection | None = None  # used on the executor's thread only
        self._lock = threading.Lock()
        # Called with each statement's SQL once it ran (SQLAlchemy's cursor events do not
        # see these statements: tests that count writes listen here too).
        self.listeners = [] if listeners is None else listeners

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, check_same_thread=False)
            try:
                _pragmas(conn, self._busy_timeout_ms)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _run(self, sql: str, args: tuple[Any, ...]) -> WriteResult:
        conn = self._connection()
        try:
            cur = conn.execute(sql, args)
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            rowcount = cur.rowcount
            cur.close()
            conn.commit()
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        return WriteResult(rowcount, rows)

    async def execute(self, stmt: Executable, params: Mapping[str, Any]) -> WriteResult:
        compiled = compiled_statement(stmt, self._dialect)
        if compiled is None or compiled.by_name:
            raise ValueError(f"not a statement for SqliteOneWriter: {stmt}")
        args = compiled.arguments(params)
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
            done = loop.run_in_executor(self._executor, self._run, compiled.sql, args)
        try:
            result = await done
        except sqlite3.Error as e:
            raise DBAPIError.instance(compiled.sql, args, e, sqlite3.Error) from e
        for listener in self.listeners:
            listener(compiled.sql)
        return result

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        """Close the connection after the writes already queued; a later write opens another."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
            executor.shutdown(wait=False)
