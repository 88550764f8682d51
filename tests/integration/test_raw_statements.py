"""db/raw.py: the hot statements straight on asyncpg give SQLAlchemy's rows and errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from sqlalchemy import event, select, text
from sqlalchemy import exc as sa_exc

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, utcnow
from coolcoding.db.raw import first_row
from coolcoding.services.workspace_types import FAST_UPDATE_STMT, READ_STMT
from tests.conftest import LiveServer, register_user


def test_raw_rows_and_errors_are_sqlalchemys(live_server: LiveServer) -> None:
    user = register_user(live_server)
    sid = user.new_session()
    r = user.client.post(
        f"/api/workspace/{sid}/file/a.bin", json={"content": "AAEC", "encoding": "base64"}
    )
    assert r.status_code == 201, r.text
    settings = live_server.settings

    async def run() -> None:
        db = Database(settings)
        executed: list[str] = []
        event.listen(
            db.engine.sync_engine,
            "before_cursor_execute",
            lambda *a, **k: executed.append(str(a[2])[:20]),
        )
        try:
            async with db.read() as conn:
                sid_row = (
                    await conn.execute(
                        select(CodeSession.id).where(CodeSession.uuid == uuid.UUID(sid))
                    )
                ).first()
                assert sid_row is not None
                params = {"sid": sid_row[0], "path": "a.bin"}
                via_sa = (await conn.execute(READ_STMT, params)).first()
                executed.clear()
                raw = await first_row(conn, READ_STMT, params)
                # PostgreSQL: asyncpg directly, not one cursor execute of SQLAlchemy's
                assert len(executed) == (0 if live_server.backend == "postgres" else 1)
                assert raw is not None and via_sa is not None
                assert tuple(raw) == tuple(via_sa)
                assert isinstance(raw[7], datetime) and raw[7].tzinfo is not None
                assert bytes(raw[8]) == b"\x00\x01\x02"
                assert await first_row(conn, READ_STMT, {**params, "path": "none"}) is None
                # The history-off save: literal binds of its own (version + 1, type = 'file').
                update = {
                    **params,
                    "content": b"new",
                    "size": 3,
                    "digest": "d" * 64,
                    "binary": False,
                    "base_version": 1,
                    "base_hash": None,
                    "max_bytes": 10**9,
                    "now": utcnow(),
                }
                assert (
                    await first_row(conn, FAST_UPDATE_STMT, {**update, "base_version": 5}) is None
                )
                row = await first_row(conn, FAST_UPDATE_STMT, update)
                assert row is not None and row[4] == 2 and row[3] == 3 and row[5] == "d" * 64
                assert row[7].tzinfo is not None
                again = await first_row(conn, READ_STMT, params)
                assert again is not None and bytes(again[8]) == b"new" and again[4] == 2
                # An error of the statement on the server comes out as SQLAlchemy raises it.
                with pytest.raises(sa_exc.DBAPIError):
                    await first_row(
                        conn, text("SELECT q FROM no_such_table_x WHERE q = :x"), {"x": 0}
                    )
        finally:
            await db.dispose()

    asyncio.run(run())
