"""The deferred save (PostgreSQL): a version's content sits in a pending row of its own until
the background compaction moves it onto the shared blob store. Every version reads back the
same before and after, the store's counts equal a full recount, and a compaction SIGKILLed at
any moment loses no version. Both databases (SQLite saves through the general transaction: no
pending rows, the same answers)."""

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
from coolcoding.services.history import HistoryRecorder, HistoryService
from coolcoding.services.history_deferred import HistoryCompactor
from coolcoding.services.sessions import ref_of
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService
from coolcoding.settings import Settings
from tests.conftest import make_database, make_settings
from tests.integration.restore_child import GO, kill_at_delays, start_child

BACKENDS = ["sqlite", "postgres"]


def _text(i: int) -> bytes:
    """A ~4 KB file whose line ``i % 80`` reads differently in each version."""
    return b"".join(
        (f"edit {i}\n" if k == i % 80 else f"line {k} of the file, unchanged\n").encode()
        for k in range(120)
    )


async def _setup(settings: Settings) -> tuple[Database, WorkspaceService, WorkspaceRef]:
    db = Database(settings)
    await upgrade(db.engine)
    ws = WorkspaceService(db, settings)
    ws.recorder = HistoryRecorder(settings)
    async with db.session() as s:
        u = User(username="deferred", email="deferred@example.com", password_hash="x")
        s.add(u)
        await s.flush()
        sess = CodeSession(user_id=u.id, name="deferred")
        s.add(sess)
        await s.commit()
    return db, ws, ref_of(sess)


async def _pending(db: Database) -> int:
    async with db.session() as s:
        n = await s.scalar(text("SELECT COUNT(*) FROM content_blobs WHERE encoding = 'pending'"))
    return int(n or 0)


async def _check_versions(
    db: Database, settings: Settings, ws: WorkspaceService, ref: WorkspaceRef, path: str
) -> list[tuple[int, str]]:
    """Every write version of ``path`` reads back content matching its hash; the store is
    consistent. Returns (id, hash) of each, newest first."""
    history = HistoryService(db, settings, ws)
    seen = []
    for v in await history.versions(ref, path, limit=1000):
        if v.kind != "write":
            continue
        info, content = await history.get(ref, v.id)
        assert info.blob_hash == v.blob_hash
        assert hashlib.sha256(content).hexdigest() == v.blob_hash, v.id
        seen.append((v.id, str(v.blob_hash)))
    async with db.session() as s:
        assert await blobstore.verify(s) == []
    return seen


@pytest.mark.parametrize("backend", BACKENDS)
def test_versions_read_back_the_same_before_and_after_compaction(
    backend: str, tmp_path: Path
) -> None:
    db_info = make_database(backend, tmp_path)
    try:
        settings = make_settings(tmp_path, db_info.url)
        settings.history_coalesce_s = 0.0
        settings.history_compact_interval_s = 0.0
        asyncio.run(_versions_scenario(settings, backend))
    finally:
        db_info.drop()


async def _versions_scenario(settings: Settings, backend: str) -> None:
    db, ws, ref = await _setup(settings)
    try:
        for i in range(40):
            await ws.save_file(ref, "a.txt", _text(i))
        # A coalescing file: its first version (the general path) holds a shared blob that
        # the next save moves into the version's own pending row.
        await ws.save_file(ref, "b.txt", _text(0))  # the same content as a.txt's first
        settings.history_coalesce_s = 3600.0
        for i in range(1, 6):
            await ws.save_file(ref, "b.txt", _text(i))
        if backend == "postgres":
            assert await _pending(db) == 40  # 39 versions of a.txt + b.txt's one
        before_a = await _check_versions(db, settings, ws, ref, "a.txt")
        before_b = await _check_versions(db, settings, ws, ref, "b.txt")
        assert len(before_a) == 40
        assert len(before_b) == 1
        history = HistoryService(db, settings, ws)
        (b_version,) = [v for v in await history.versions(ref, "b.txt") if v.kind == "write"]
        assert b_version.changes == 6  # its creation and five edits

        compactor = HistoryCompactor(db, settings)
        # b.txt's version is open (a save may still coalesce into it); a.txt's older ones not.
        while await compactor.compact_once():
            pass
        if backend == "postgres":
            assert await _pending(db) == 2  # the latest of each file, still open
        await compactor.compact_once(everything=True)
        assert await _pending(db) == 0
        assert await _check_versions(db, settings, ws, ref, "a.txt") == before_a
        assert await _check_versions(db, settings, ws, ref, "b.txt") == before_b
        async with db.session() as s:
            deltas = await s.scalar(
                text("SELECT COUNT(*) FROM content_blobs WHERE encoding = 'delta'")
            )
        assert int(deltas or 0) >= 30  # one-line edits are stored as deltas

        # A save coalescing into a compacted version takes it back into a pending row and
        # lets go of its shared blob.
        await ws.save_file(ref, "b.txt", _text(99))
        after = await _check_versions(db, settings, ws, ref, "b.txt")
        assert after == [(before_b[0][0], hashlib.sha256(_text(99)).hexdigest())]
        await compactor.compact_once(everything=True)
        assert await _check_versions(db, settings, ws, ref, "b.txt") == after
    finally:
        await db.dispose()


CHILD = """
import asyncio, sys
from coolcoding.db.engine import Database
from coolcoding.services.history_deferred import HistoryCompactor
from coolcoding.settings import Settings

async def main():
    settings = Settings(database_url=sys.argv[1], data_dir=sys.argv[2], environment="test",
                        history_compact_batch=5)
    db = Database(settings)
    compactor = HistoryCompactor(db, settings)
    print("ready", flush=True)
    GO
    while await compactor.compact_once(everything=True):
        pass
    print("done", flush=True)

asyncio.run(main())
""".replace("GO", GO)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_mid_compaction_loses_no_version(backend: str, tmp_path: Path) -> None:
    db_info = make_database(backend, tmp_path)
    try:
        settings = make_settings(tmp_path, db_info.url)
        settings.history_coalesce_s = 0.0
        settings.history_compact_interval_s = 0.0
        settings.history_max_versions = 1000
        expected = asyncio.run(_seed_versions(settings, backend))
        left: list[int] = []

        def check() -> None:
            assert asyncio.run(_after_kill(settings)) == expected
            left.append(asyncio.run(_pending_of(settings)))

        # SQLite has no pending rows: the child's compaction finds nothing whenever it is killed,
        # so every delay takes the same path there (left stays all 0): one killed pass and one
        # complete pass.
        kill_at_delays(
            lambda: start_child(CHILD, db_info.url, str(tmp_path)),
            (0.0, 0.1, 0.3, 0.6, 1.0, None) if backend == "postgres" else (0.0, None),
            check,
        )
        assert left[-1] == 0  # the last pass was not killed
        if backend == "postgres":
            assert any(0 < n < 149 for n in left), left  # some kill did land mid-compaction
        else:
            assert left == [0, 0], left
    finally:
        db_info.drop()


async def _seed_versions(settings: Settings, backend: str) -> list[tuple[int, str]]:
    db, ws, ref = await _setup(settings)
    try:
        for i in range(150):
            await ws.save_file(ref, "big.txt", _text(i) * 4)
        if backend == "postgres":
            assert await _pending(db) == 149
        return await _check_versions(db, settings, ws, ref, "big.txt")
    finally:
        await db.dispose()


async def _after_kill(settings: Settings) -> list[tuple[int, str]]:
    db = Database(settings)
    ws = WorkspaceService(db, settings)
    try:
        async with db.session() as s:
            sid, uuid = (await s.execute(text("SELECT id, uuid FROM sessions"))).one()
        return await _check_versions(db, settings, ws, WorkspaceRef(int(sid), str(uuid)), "big.txt")
    finally:
        await db.dispose()


async def _pending_of(settings: Settings) -> int:
    db = Database(settings)
    try:
        return await _pending(db)
    finally:
        await db.dispose()
