"""SQLite's write lock: its wait is a setting, and a "database is locked" failure names who holds it.

SQLite-only by nature (PostgreSQL has row locks, no database-wide write lock). A CI run once
failed every browser test after one point with "database is locked": the victims' errors said
nothing of the holder. These tests hold a write transaction in a named task and check that the
failure of another writer logs that task, its statement and its stack.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from coolcoding.db.engine import Database
from coolcoding.settings import Settings


def _db(tmp_path: Path, busy_ms: int) -> Database:
    return Database(Settings(data_dir=tmp_path, sqlite_busy_timeout_ms=busy_ms))


async def _table(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))


async def _hold_write(db: Database, release: asyncio.Event, holding: asyncio.Event) -> None:
    async with db.session() as s:
        await s.execute(text("INSERT INTO t (v) VALUES ('held')"))
        holding.set()
        await release.wait()
        await s.commit()


def test_busy_timeout_is_the_setting(tmp_path: Path) -> None:
    async def go() -> int:
        db = _db(tmp_path, 1234)
        try:
            async with db.engine.connect() as conn:
                return int((await conn.execute(text("PRAGMA busy_timeout"))).scalar_one())
        finally:
            await db.dispose()

    assert asyncio.run(go()) == 1234


def test_a_locked_write_logs_the_holding_task_and_its_statement(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        db = _db(tmp_path, 150)
        await _table(db)
        release, holding = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(_hold_write(db, release, holding), name="the-holder")
        await holding.wait()
        assert db.sqlite_writers is not None and len(db.sqlite_writers.open) == 1
        with caplog.at_level(logging.WARNING, logger="coolcoding.db.engine"):
            with pytest.raises(OperationalError, match="locked"):
                async with db.session() as s:
                    await s.execute(text("INSERT INTO t (v) VALUES ('victim')"))
                    await s.commit()
        release.set()
        await holder
        # The commit ended it; a rolled back write and an autocommit one leave nothing either.
        assert db.sqlite_writers.open == {}
        async with db.session() as s:
            await s.execute(text("UPDATE t SET v = 'x'"))
            assert len(db.sqlite_writers.open) == 1
            await s.rollback()
        assert db.sqlite_writers.open == {}
        async with db.read() as conn:
            await conn.execute(text("DELETE FROM t WHERE v = 'nothing'"))
            assert db.sqlite_writers.open == {}
        await db.dispose()

    asyncio.run(go())
    lines = [r.getMessage() for r in caplog.records if "database is locked" in r.getMessage()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "1 connection(s) of this process hold a write transaction" in line
    assert "INSERT INTO t (v) VALUES ('held')" in line
    assert "in task the-holder (pending)" in line
    assert "_hold_write" in line  # the holder's stack: where it waits with the lock


def test_a_session_returned_to_the_pool_unfinished_is_no_longer_a_holder(tmp_path: Path) -> None:
    async def go() -> None:
        db = _db(tmp_path, 150)
        await _table(db)
        s = db.sessionmaker()
        await s.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert db.sqlite_writers is not None and len(db.sqlite_writers.open) == 1
        await s.close()  # no commit: the pool's reset rolls it back
        assert db.sqlite_writers.open == {}
        async with db.session() as s2:  # and the lock is free
            await s2.execute(text("INSERT INTO t (v) VALUES ('b')"))
            await s2.commit()
        await db.dispose()

    asyncio.run(go())


def test_the_rollback_of_an_invalidated_connection_still_works(tmp_path: Path) -> None:
    """The record must never break a rollback: on a connection invalidated mid-transaction,
    ``Connection.connection`` raises PendingRollbackError, which once made a session's close
    fail and a sandbox stop hang (test_sandbox_outlives_server under SQLite)."""

    async def go() -> None:
        db = _db(tmp_path, 150)
        await _table(db)
        async with db.session() as s:
            await s.execute(text("INSERT INTO t (v) VALUES ('a')"))
            conn = await s.connection()
            await conn.invalidate()
            await s.rollback()  # raised PendingRollbackError from the "rollback" listener
        assert db.sqlite_writers is not None and db.sqlite_writers.open == {}
        async with db.session() as s2:  # and the database is writable
            await s2.execute(text("INSERT INTO t (v) VALUES ('b')"))
            await s2.commit()
        await db.dispose()

    asyncio.run(go())
