"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable

from coolcoding.db import raw
from coolcoding.db.raw import RAW_OPTION, WriteResult
from coolcoding.db.sqlite_write import SqliteOneWriter
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

# The statements before which Python's sqlite3 (legacy transaction control) opens a transaction
# that takes SQLite's single write lock until its commit or rollback.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN")
# "database is locked" failures log the holders at most this often.
_REPORT_EVERY_S = 10.0


@dataclass(slots=True)
class _Writer:
    since: float  # time.monotonic()
    statement: str
    task: weakref.ref[asyncio.Task[Any]] | None  # weak: a record never keeps a task alive


class SqliteWriters:
    """Which connections of one SQLite engine hold a write transaction (and so the database's
    write lock), since when, begun by which statement in which task.

    SQLite has one writer at a time: a transaction left open across a slow await (or leaked by
    a task that never finished) makes every other write wait ``sqlite_busy_timeout_ms`` and fail
    with "database is locked". When that happens the failure alone names only the victim; this
    logs the holders (their age, statement and the holding task's stack). Bookkeeping: one dict
    operation per write statement, commit, rollback and pool check-in.
    """

    def __init__(self) -> None:
        self.open: dict[int, _Writer] = {}
        self._reported = 0.0

    def attach(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        event.listen(sync, "after_cursor_execute", self._after_execute)
        event.listen(sync, "commit", self._end)
        event.listen(sync, "rollback", self._end)
        event.listen(sync, "handle_error", self._on_error)
        event.listen(sync.pool, "checkin", self._checkin)
        event.listen(sync.pool, "reset", self._reset)
        event.listen(sync.pool, "close", self._checkin)
        event.listen(sync.pool, "invalidate", self._invalidate)

    def _after_execute(
        self, conn: Connection, _c: Any, statement: str, _p: Any, context: Any, _m: bool
    ) -> None:
        raw = conn._dbapi_connection
        if raw is None:
            return
        key = id(raw.dbapi_connection)
        if key in self.open or not statement.lstrip()[:7].upper().startswith(_WRITES):
            return
        if context is not None and context.execution_options.get("isolation_level") == (
            "AUTOCOMMIT"
        ):
            return  # its own transaction, over when the statement is
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        ref = weakref.ref(task) if task is not None else None
        self.open[key] = _Writer(time.monotonic(), " ".join(statement.split())[:200], ref)

    def _end(self, conn: Connection) -> None:
        # ``conn.connection`` raises on an invalidated connection (its rollback after a failed
        # statement): the record must never break a rollback; the pool's "invalidate" (below)
        # has dropped that connection's record already.
        raw = conn._dbapi_connection  # None once invalidated
        if raw is not None:
            self.open.pop(id(raw.dbapi_connection), None)

    def _checkin(self, dbapi_conn: Any, _record: Any) -> None:
        self.open.pop(id(dbapi_conn), None)

    def _reset(self, dbapi_conn: Any, _record: Any, _state: Any) -> None:
        self.open.pop(id(dbapi_conn), None)

    def _invalidate(self, dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        self.open.pop(id(dbapi_conn), None)

    def _on_error(self, ctx: ExceptionContext) -> None:
        exc = ctx.original_exception
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            now = time.monotonic()
            if now - self._reported >= _REPORT_EVERY_S:
                self._reported = now
                log.warning("database is locked; %s", self.describe(now))

    def describe(self, now: float | None = None) -> str:
        """The write transactions open now, oldest first (the log line of a lock failure)."""
        now = time.monotonic() if now is None else now
        if not self.open:
            return "no connection of this process holds a write transaction"
        parts = [f"{len(self.open)} connection(s) of this process hold a write transaction:"]
        for w in sorted(self.open.values(), key=lambda w: w.since):
            task = w.task() if w.task is not None else None
            where = "outside any task" if w.task is None else "in a task that no longer exists"
            if task is not None:
                buf = io.StringIO()
                state = "done" if task.done() else "pending"
                task.print_stack(limit=12, file=buf)
                where = f"in task {task.get_name()} ({state}):\n{buf.getvalue().rstrip()}"
            parts.append(f"- for {now - w.since:.1f} s, begun by: {w.statement}; {where}")
        return "\n".join(parts)


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets readers run beside the writer; foreign_keys makes ON DELETE CASCADE real.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    return apply


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        if ":memory:" in url:
            engine = create_async_engine(url, poolclass=StaticPool)
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url)
        event.listen(
            engine.sync_engine, "connect", _sqlite_pragmas(settings.sqlite_busy_timeout_ms)
        )
        return engine
    # No pre-ping (a round trip per checkout); stale connections are recycled instead.
    return create_async_engine(
        url, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size, pool_recycle=1800
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The engine and session factory of one app instance."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        self.sessionmaker = make_sessionmaker(self.engine)
        # Single-statement reads need no transaction: on PostgreSQL a plain checkout costs a
        # BEGIN and a ROLLBACK round trip around the one query; this engine (same pool) skips both.
        self.reader = self.engine.execution_options(
            isolation_level="AUTOCOMMIT", **{RAW_OPTION: settings.db_raw_hot_statements}
        )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # The same for one write statement (``one_write``); without the raw-statement option.
        self._writer = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # ``write``'s: the same, straight on asyncpg when ``db_raw_hot_statements`` (raw.py).
        self._raw_writer = self._writer.execution_options(
            **{RAW_OPTION: settings.db_raw_hot_statements}
        )
        self.sqlite_writers: SqliteWriters | None = None
        self.one_writer: SqliteOneWriter | None = None
        # Called with the SQL of each ``write`` that ran outside SQLAlchemy's execute (so its
        # cursor events never saw it): tests that count statements listen to both.
        self.write_listeners: list[Callable[[str], None]] = []
        if self.is_sqlite:
            self.sqlite_writers = SqliteWriters()
            self.sqlite_writers.attach(self.engine)
            path = self.engine.url.database
            if settings.db_sqlite_one_hop_writes and path and path != ":memory:":
                self.one_writer = SqliteOneWriter(
                    path, self.engine.dialect, settings.sqlite_busy_timeout_ms, self.write_listeners
                )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as s:
            yield s

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read-only statement, outside any transaction."""
        async with self.reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def one_write(self) -> AsyncIterator[AsyncConnection]:
        """A connection for exactly ONE write statement, which is its own transaction.

        PostgreSQL: autocommit, no BEGIN and COMMIT round trips around it (a statement is atomic
        by itself); never use it for two statements that must hold together. SQLite: a
        transaction as ``engine.begin()`` (pysqlite's BEGIN is implicit and free, while
        switching aiosqlite's connection to autocommit and back costs two thread hops)."""
        if self.is_sqlite:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._writer.connect() as conn:
                yield conn

    async def write(self, stmt: Executable, params: Mapping[str, Any]) -> WriteResult:
        """ONE write statement as its own transaction, committed when this returns; what it
        returned (RETURNING: columns without a result processor only) and its row count.
        SQLite: one hop to a dedicated connection's thread (db/sqlite_write.py); PostgreSQL:
        autocommit, straight on asyncpg (raw.py ``write``)."""
        if self.one_writer is not None:
            return await self.one_writer.execute(stmt, params)
        if self.is_sqlite:  # in memory: no second connection can see it
            async with self.one_write() as conn:
                res = await conn.execute(stmt, dict(params))
                rows = [tuple(r) for r in res.all()] if res.returns_rows else []
                return WriteResult(res.rowcount, rows)
        async with self._raw_writer.connect() as conn:
            return await raw.write(conn, stmt, params, self.write_listeners)

    async def dispose(self) -> None:
        if self.one_writer is not None:
            await self.one_writer.close()
        await self.engine.dispose()
