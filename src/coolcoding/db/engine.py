"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from coolcoding.db.raw import RAW_OPTION
from coolcoding.settings import Settings


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; foreign_keys makes ON DELETE CASCADE real.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        if ":memory:" in url:
            engine = create_async_engine(url, poolclass=StaticPool)
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
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

    async def dispose(self) -> None:
        await self.engine.dispose()
