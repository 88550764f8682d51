"""kill -9 in the middle of a snapshot restore or a purge leaves a consistent workspace: a child
process restores a snapshot of 2,000 files over a 2,500-file workspace and then purges the safety
snapshot; it is SIGKILLed at increasing delays. Afterwards the workspace is entirely one state or
the other (contents match their hashes, every parent link is right) and the blob store's counts
equal a full recount. Both databases."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import CodeSession, User
from coolcoding.services import blobstore
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.sessions import ref_of
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceService
from tests.conftest import make_database, make_settings
from tests.integration.restore_child import GO, kill_at_delays, start_restore_child

CHILD = """
import asyncio, sys
from coolcoding.db.engine import Database
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService
from coolcoding.settings import Settings

async def main():
    settings = Settings(database_url=sys.argv[1], data_dir=sys.argv[2], environment="test")
    db = Database(settings)
    ws = WorkspaceService(db, settings)
    snaps = SnapshotService(db, settings, ws)
    ref = WorkspaceRef(int(sys.argv[3]), sys.argv[4])
    print("ready", flush=True)
    GO
    out = await snaps.restore(ref, int(sys.argv[5]))
    await snaps.delete(ref, out["safety_snapshot_id"])
    print("done", flush=True)

asyncio.run(main())
""".replace("GO", GO)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_mid_restore_and_purge(backend: str, tmp_path: Path) -> None:
    db_info = make_database(backend, tmp_path)
    try:
        settings = make_settings(tmp_path, db_info.url)
        ref, snap_id = asyncio.run(_seed(settings))
        outcomes = set()

        def check() -> None:
            count = asyncio.run(_check(settings, ref.session_id))
            outcomes.add(count)
            assert count in (2_000 + 20, 2_500 + 21), count  # files + folders of either state

        kill_at_delays(
            lambda: start_restore_child(CHILD, db_info.url, tmp_path, ref, snap_id),
            (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, None),
            check,
        )
        assert 2_000 + 20 in outcomes  # the restore does complete when not killed
    finally:
        db_info.drop()


async def _seed(settings):  # type: ignore[no-untyped-def]
    db = Database(settings)
    await upgrade(db.engine)
    ws = WorkspaceService(db, settings)
    ws.recorder = HistoryRecorder(settings)
    snaps = SnapshotService(db, settings, ws)
    async with db.session() as s:
        u = User(username="crash", email="crash@example.com", password_hash="x")
        s.add(u)
        await s.flush()
        sess = CodeSession(user_id=u.id, name="crash")
        s.add(sess)
        await s.commit()
    ref = ref_of(sess)
    await ws.create_files(
        ref, [(f"d{i % 20}/f{i}.txt", f"A{i}\n".encode() * 30) for i in range(2_000)]
    )
    snap = await snaps.create(ref, "before")
    await ws.create_files(ref, [(f"extra/g{i}.txt", f"B{i}\n".encode()) for i in range(500)])
    await db.dispose()
    return ref, snap.id


async def _check(settings, session_id: int) -> int:  # type: ignore[no-untyped-def]
    db = Database(settings)
    try:
        async with db.session() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT w.full_path, w.type, w.content, w.content_hash, p.full_path"
                        " FROM workspace_items w LEFT JOIN workspace_items p ON p.id = w.parent_id"
                        " WHERE w.session_id = :sid"
                    ),
                    {"sid": session_id},
                )
            ).all()
            for path, typ, content, digest, parent in rows:
                assert parent == (path.rsplit("/", 1)[0] if "/" in path else None), path
                if typ == "file":
                    assert hashlib.sha256(content or b"").hexdigest() == digest, path
            assert await blobstore.verify(s) == []
        return len(rows)
    finally:
        await db.dispose()
