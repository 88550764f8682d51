"""A restore's in-place rewrite of the files it changes (migration 0013): on PostgreSQL the update
of a content is a HOT update (no index entry written), because the index of the text files with
a NUL names a generated flag instead of the content; the flag follows every content written (a
restore, a save), so search still reads exactly those files. Both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import CodeSession, User
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.search import SearchQuery, SearchService
from coolcoding.services.sessions import ref_of
from coolcoding.services.snapshot_sql import keep_unchanged
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService
from tests.conftest import make_database, make_settings

FILES = {f"d{i % 4}/f{i}.py": f"value{i} = {i}\n".encode() for i in range(40)}
# A text file (no NUL in its first 8 KiB) with a NUL after them: the index cannot see its text.
LATE_NUL = b"filler line\n" * 700 + b"\0 then hiddenword here\n"
PLAIN = b"filler line\n" * 700 + b"no nul, hiddenword here\n"


async def _setup(tmp_path: Path, url: str) -> tuple[Database, WorkspaceService, SnapshotService]:
    settings = make_settings(tmp_path, url, history_coalesce_s=0.0)
    db = Database(settings)
    await upgrade(db.engine)
    ws = WorkspaceService(db, settings)
    ws.recorder = HistoryRecorder(settings)
    return db, ws, SnapshotService(db, settings, ws)


async def _workspace(db: Database, name: str) -> WorkspaceRef:
    async with db.session() as s:
        u = User(username=name, email=f"{name}@example.com", password_hash="x")
        s.add(u)
        await s.flush()
        sess = CodeSession(user_id=u.id, name=name)
        s.add(sess)
        await s.commit()
    return ref_of(sess)


async def _found(db: Database, ref: WorkspaceRef, settings: Any, q: str) -> list[str]:
    search = SearchService(db, settings)
    return sorted(f.path for f in (await search.search(ref, SearchQuery(q))).files)


async def _update_counts(s: Any) -> tuple[int, int]:
    """PostgreSQL: this backend's updates of workspace rows not yet flushed to the statistics
    (this transaction's among them), and how many were HOT."""
    upd, hot = (
        await s.execute(
            text(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
                " WHERE relname = 'workspace_items'"
            )
        )
    ).one()
    return int(upd), int(hot)


def test_restore_rewrites_contents_in_place_without_index_entries(
    backend: str, tmp_path: Path
) -> None:
    """PostgreSQL: every row the restore's rewrite updates is a HOT update (fails with 0010's
    partial index, whose predicate names the content: 0 HOT). SQLite: the rewrite is the same
    statement; only its result is checked."""
    tdb = make_database(backend, tmp_path)

    async def go() -> None:
        db, ws, snaps = await _setup(tmp_path, tdb.url)
        try:
            ref = await _workspace(db, "hot")
            await ws.create_files(ref, list(FILES.items()))
            snap = await snaps.create(ref, "before")
            for path, content in FILES.items():
                await ws.save_file(ref, path, content + b"# changed\n")
            async with db.session() as s, s.begin():
                before = await _update_counts(s) if backend == "postgres" else (0, 0)
                deleted, rewritten, _ = await keep_unchanged(
                    s, session_id=ref.session_id, snapshot_id=snap.id, version=1_000
                )
                assert (deleted, rewritten) == (0, len(FILES))
                if backend == "postgres":
                    upd, hot = (a - b for a, b in zip(await _update_counts(s), before, strict=True))
                    assert (upd, hot) == (len(FILES), len(FILES))
            for path, content in FILES.items():
                assert (await ws.read(ref, path))[1] == content
        finally:
            await db.dispose()

    try:
        asyncio.run(go())
    finally:
        tdb.drop()


def test_search_follows_a_nul_brought_or_removed_by_a_restore_or_a_save(
    backend: str, tmp_path: Path
) -> None:
    """The files search always reads (a NUL after 8 KiB) are those of the contents now: a restore
    that brings such a content back, a save that removes it, a restore that removes it."""
    tdb = make_database(backend, tmp_path)

    async def go() -> None:
        db, ws, snaps = await _setup(tmp_path, tdb.url)
        settings = ws.settings
        try:
            ref = await _workspace(db, "nulflag")
            await ws.create_files(ref, [*FILES.items(), ("late.txt", LATE_NUL)])
            with_nul = await snaps.create(ref, "with nul")
            assert await _found(db, ref, settings, "hiddenword") == ["late.txt"]
            await ws.save_file(ref, "late.txt", b"short now\n")
            assert await _found(db, ref, settings, "hiddenword") == []
            without_nul = await snaps.create(ref, "without nul")
            await snaps.restore(ref, with_nul.id)
            await snaps.search_refreshed()
            assert await _found(db, ref, settings, "hiddenword") == ["late.txt"]
            await snaps.restore(ref, without_nul.id)
            await snaps.search_refreshed()
            assert await _found(db, ref, settings, "hiddenword") == []
            # A text file over 8 KiB without a NUL is found through the index, not the flag.
            await ws.save_file(ref, "plain.txt", PLAIN)
            assert await _found(db, ref, settings, "hiddenword") == ["plain.txt"]
        finally:
            await db.dispose()

    try:
        asyncio.run(go())
    finally:
        tdb.drop()
