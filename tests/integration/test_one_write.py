"""db/engine.py ``Database.one_write``: one statement as its own transaction. On PostgreSQL no
BEGIN/COMMIT wraps it (the row is visible to other connections as soon as the statement ran);
on SQLite it is a transaction like ``engine.begin()`` (committed when the block ends)."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import text

from coolcoding.db.engine import Database
from tests.conftest import LiveServer


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
