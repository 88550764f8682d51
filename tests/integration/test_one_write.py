"""db/engine.py ``Database.one_write``: one statement as its own transaction. On PostgreSQL no
BEGIN/COMMIT wraps it (the row is visible to other connections as soon as the statement ran);
on SQLite it is a transaction like ``engine.begin()`` (committed when the block ends)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid as uuid_mod
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from coolcoding.api.errors import database_unavailable
from coolcoding.db.engine import Database
from coolcoding.db.models import Execution
from coolcoding.execution.db_queue import _ATTRS, CLAIM
from coolcoding.services.executions import _RESULT_COLUMNS, FINISH_QUEUED, INSERT_JOB
from tests.conftest import LiveServer, register_user


def test_one_write_is_its_own_transaction(live_server: LiveServer) -> None:
    table = f"one_write_probe_{secrets.token_hex(4)}"
    postgres = live_server.backend == "postgres"

    async def run() -> None:
        db = Database(live_server.settings)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"CREATE TABLE {table} (v INTEGER)"))
            async with db.one_write() as conn:
                await conn.execute(text(f"INSERT INTO {table} (v) VALUES (1)"))
                async with db.read() as other:
                    seen = (await other.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert seen == (1 if postgres else 0)
            async with db.read() as other:
                assert (await other.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 1
        finally:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await db.dispose()

    asyncio.run(run())


# --- Database.write: one statement, one transaction (SQLite: one hop, db/sqlite_write.py) ----


async def user_id_of(db: Database, username: str) -> int:
    async with db.read() as conn:
        found = await conn.execute(
            text("SELECT id FROM users WHERE username = :u"), {"u": username}
        )
        return int(found.scalar_one())


def _job_values(user_id: int) -> dict[str, Any]:
    return {
        "uuid": uuid_mod.uuid4(),
        "session_id": None,
        "user_id": user_id,
        "kind": "judge",
        "language": "python",
        "status": "queued",
        "verdict": None,
        "source": {"files": {"main.py": "print('é')"}, "entry": "main.py"},
        "stdin": b"\x00\xffin",
        "expected_output": None,
        "limits": {"cpu_s": 1.5},
        "stdout": None,
        "stderr": None,
        "compile_output": None,
        "exit_code": None,
        "signal": None,
        "wall_ms": None,
        "cpu_ms": None,
        "memory_kb": None,
        "message": None,
        "created_at": datetime(2026, 12, 4, 15, 0, 1, 123456, tzinfo=UTC),
        "started_at": None,
        "completed_at": None,
        "owner": "replica:probe",
        "attempt": 0,
        "worker": None,
        "lease_until": None,
        "testcases": None,
        "case_results": [{"verdict": "accepted", "cpu_ms": 1.25}],
        "callback_url": None,
    }


def test_write_stores_what_the_orm_reads_back(live_server: LiveServer) -> None:
    """INSERT ... RETURNING id and UPDATE through ``Database.write``: the row the ORM reads
    back has every value as given (UUID, UTC datetimes, JSON, bytes, NULLs); an UPDATE whose
    condition fails reports 0 rows and writes nothing."""
    u = register_user(live_server)
    u.client.close()

    async def run() -> None:
        db = Database(live_server.settings)
        try:
            user_id = await user_id_of(db, u.username)
            values = _job_values(user_id)
            res = await db.write(INSERT_JOB, values)
            job_id = int(res.scalar_one())
            assert res.rowcount == 1
            done = datetime(2026, 12, 4, 15, 0, 2, 5, tzinfo=UTC)
            result = {c: None for c in _RESULT_COLUMNS} | {
                "status": "finished", "verdict": "accepted", "stdout": b"\xc3\xa9\n",
                "exit_code": 0, "cpu_ms": 12.5, "memory_kb": 1 << 33, "completed_at": done,
                "case_results": [], "started_at": done,
            }  # fmt: skip
            missed = await db.write(
                FINISH_QUEUED, {"eid": job_id, "by_owner": "replica:other", **result}
            )
            assert missed.rowcount == 0 and missed.rows == []
            hit = await db.write(
                FINISH_QUEUED, {"eid": job_id, "by_owner": "replica:probe", **result}
            )
            assert hit.rowcount == 1
            async with db.session() as s:
                row = await s.get(Execution, job_id)
                assert row is not None
                for k, v in (values | result).items():
                    if k not in ("eid", "by_owner"):
                        assert getattr(row, k) == v, (k, getattr(row, k), v)
            # Stored exactly as SQLAlchemy's own execute stores the same values (the raw
            # column text/bytes: SQL compares and orders them, e.g. lease_until < now).
            twin = values | {"uuid": uuid_mod.uuid4()}
            async with db.engine.begin() as conn:
                twin_id = (await conn.execute(INSERT_JOB, twin)).scalar_one()
                await conn.execute(
                    FINISH_QUEUED, {"eid": twin_id, "by_owner": "replica:probe", **result}
                )
            async with db.read() as conn:
                raw = (await conn.execute(
                    text("SELECT * FROM executions WHERE id IN (:a, :b) ORDER BY id"),
                    {"a": job_id, "b": twin_id},
                )).all()  # fmt: skip
            ours, theirs = (dict(r._mapping) for r in raw)
            for k in ("id", "uuid"):
                del ours[k], theirs[k]
            assert ours == theirs
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_typed_returning_goes_straight_to_asyncpg_with_sqlalchemys_values(
    live_server: LiveServer,
) -> None:
    """PostgreSQL: the database queue's claim (a textual statement with typed columns: UTC
    datetimes through their result processor, floats, JSON, bytes, a UUID) takes the raw path
    (the write listeners see it) and returns, column for column, what SQLAlchemy's own execute
    returns for the same claim of a twin row. Checked failing without raw.py's Float fallback
    (asyncpg's Float processor wants a type oid: the claim then took SQLAlchemy's path)."""
    if live_server.backend != "postgres":
        pytest.skip("the database queue and the raw path are PostgreSQL's")
    u = register_user(live_server)
    u.client.close()

    async def run() -> None:
        db = Database(live_server.settings)
        seen: list[str] = []
        db.write_listeners.append(seen.append)
        try:
            user_id = await user_id_of(db, u.username)
            owner = f"db-queue-probe-{secrets.token_hex(3)}"
            base = _job_values(user_id) | {"owner": owner, "wall_ms": 3.5, "cpu_ms": 2.25}
            params = {"owner": owner, "cap": 0, "worker": "w-probe", "lease": 30.0}
            await db.write(INSERT_JOB, base)
            ours = (await db.write(CLAIM, params)).rows
            assert len(seen) == 2 and "FOR UPDATE" in seen[1]  # both straight on asyncpg
            await db.write(INSERT_JOB, base | {"uuid": uuid_mod.uuid4()})
            async with db.engine.connect() as conn:
                theirs = [tuple(r) for r in (await conn.execute(CLAIM, params)).all()]
                await conn.commit()
            assert len(ours) == len(theirs) == 1
            names = [col.name for _key, col in _ATTRS]
            mine, twin = (
                dict(zip(names, ours[0], strict=True)),
                dict(zip(names, theirs[0], strict=True)),
            )
            assert isinstance(mine["started_at"], datetime) and mine["started_at"].tzinfo is UTC
            assert isinstance(mine["wall_ms"], float) and mine["stdin"] == b"\x00\xffin"
            for k in ("id", "uuid", "started_at", "lease_until"):
                assert type(mine[k]) is type(twin[k]), k
                del mine[k], twin[k]
            assert mine == twin
        finally:
            await db.dispose()

    asyncio.run(run())


def test_write_errors_are_sqlalchemys_and_write_nothing(live_server: LiveServer) -> None:
    """A duplicate uuid is SQLAlchemy's IntegrityError, nothing is written, and the next write
    works; after ``dispose`` a write opens its connection again."""
    u = register_user(live_server)
    u.client.close()

    async def run() -> None:
        db = Database(live_server.settings)
        try:
            user_id = await user_id_of(db, u.username)
            values = _job_values(user_id)
            await db.write(INSERT_JOB, values)
            with pytest.raises(sa_exc.IntegrityError):
                await db.write(INSERT_JOB, values | {"language": "c"})
            async with db.read() as conn:
                n = (await conn.execute(
                    text("SELECT count(*) FROM executions WHERE user_id = :u"), {"u": user_id}
                )).scalar_one()  # fmt: skip
            assert n == 1
            await db.dispose()
            await db.write(INSERT_JOB, values | {"uuid": uuid_mod.uuid4()})
            async with db.read() as conn:
                n = (await conn.execute(
                    text("SELECT count(*) FROM executions WHERE user_id = :u"), {"u": user_id}
                )).scalar_one()  # fmt: skip
            assert n == 2
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_locked_sqlite_is_a_503_not_a_500(live_server: LiveServer) -> None:
    """Another connection holds SQLite's write lock past the busy timeout: the one-hop write
    fails as SQLAlchemy's OperationalError, which the API answers as "database unavailable"
    (503), nothing half-written; once the lock is gone it works."""
    if live_server.backend != "sqlite":
        pytest.skip("SQLite's write lock")
    u = register_user(live_server)
    u.client.close()
    settings = live_server.settings.model_copy(update={"sqlite_busy_timeout_ms": 200})

    async def run() -> None:
        db = Database(settings)
        assert db.one_writer is not None
        path = db.engine.url.database
        assert path
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            user_id = await user_id_of(db, u.username)
            holder.execute("BEGIN IMMEDIATE")
            values = _job_values(user_id)
            with pytest.raises(sa_exc.OperationalError) as caught:
                await db.write(INSERT_JOB, values)
            assert database_unavailable(caught.value)
            holder.execute("ROLLBACK")
            await db.write(INSERT_JOB, values)
        finally:
            holder.close()
            await db.dispose()

    asyncio.run(run())


def test_write_refuses_a_statement_it_would_return_wrongly(live_server: LiveServer) -> None:
    """The one-hop path returns the driver's values: a RETURNING of a column with a result
    processor (a UTC datetime) is refused rather than returned unprocessed."""
    if live_server.backend != "sqlite":
        pytest.skip("the one-hop path is SQLite's")
    stmt = (
        update(Execution.__table__)
        .values(message="x")
        .returning(  # type: ignore[arg-type]
            Execution.__table__.c.created_at
        )
    )

    async def run() -> None:
        db = Database(live_server.settings)
        try:
            with pytest.raises(ValueError, match="not a statement"):
                await db.write(stmt, {})
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_lost_postgresql_connection_is_a_503_and_the_next_write_works(
    live_server: LiveServer,
) -> None:
    """Every pooled connection's backend is terminated (a PostgreSQL restart): the raw write
    fails as "database unavailable" (503), is not rerun, and the next write works: the whole
    pool was invalidated, not only the connection that failed."""
    if live_server.backend != "postgres":
        pytest.skip("PostgreSQL's raw write path")
    u = register_user(live_server)
    u.client.close()

    async def run() -> None:
        db = Database(live_server.settings)
        try:
            user_id = await user_id_of(db, u.username)
            # Three connections in the pool, idle.
            await asyncio.gather(*(
                db.write(INSERT_JOB, _job_values(user_id)) for _ in range(3)
            ))  # fmt: skip

            # Their backends' pids (held at once: three distinct connections), and only those
            # are terminated: the live server shares this database.
            async def backend_pid() -> int:
                async with db.read() as conn:
                    found = await conn.execute(text("SELECT pg_backend_pid(), pg_sleep(0.2)"))
                    return int(found.first()[0])  # type: ignore[index]

            pids = set(await asyncio.gather(*(backend_pid() for _ in range(3))))
            assert len(pids) == 3
            admin = create_async_engine(live_server.settings.database_url, poolclass=NullPool)
            async with admin.connect() as conn:
                for pid in pids:
                    await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            await admin.dispose()
            lost = _job_values(user_id) | {"language": "lost"}
            with pytest.raises(Exception) as caught:
                await db.write(INSERT_JOB, lost)
            assert database_unavailable(caught.value), repr(caught.value)
            await db.write(INSERT_JOB, _job_values(user_id) | {"language": "after"})
            async with db.read() as conn:
                counts = dict((await conn.execute(text(
                    "SELECT language, count(*) FROM executions WHERE user_id = :u "
                    "GROUP BY language"), {"u": user_id})).all())  # fmt: skip
            assert counts == {"python": 3, "after": 1}, counts
        finally:
            await db.dispose()

    asyncio.run(run())


def test_write_of_a_text_statement_returns_its_rows(live_server: LiveServer) -> None:
    """A text() write (whether it returns rows is known only from the cursor): its RETURNING
    rows and an UPDATE's row count come back on both databases."""
    table = f"write_probe_{secrets.token_hex(4)}"

    async def run() -> None:
        db = Database(live_server.settings)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT)"))
            res = await db.write(
                text(f"INSERT INTO {table} (id, v) VALUES (:i, :v) RETURNING id"),
                {"i": 7, "v": "a"},
            )
            assert res.scalar_one() == 7
            upd = await db.write(
                text(f"UPDATE {table} SET v = :v WHERE id >= :i"), {"i": 0, "v": "b"}
            )
            assert upd.rowcount == 1 and upd.rows == []
        finally:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await db.dispose()

    asyncio.run(run())
