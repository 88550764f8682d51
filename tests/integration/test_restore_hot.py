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
    print("ready", flush=True)
    await snaps.restore(WorkspaceRef(int(sys.argv[3]), sys.argv[4]), int(sys.argv[5]))
    print("done", flush=True)

asyncio.run(main())
"""

# 1,500 files; in the snapshot every one differs, and every tenth is a text file with a NUL
# after 8 KiB (in the state now, none is).
STATE_NOW = {f"d{i % 15}/f{i}.txt": f"now{i}\n".encode() * 20 for i in range(1_500)}
STATE_SNAP = {
    p: (LATE_NUL + str(i).encode() if i % 10 == 0 else f"snap{i}\n".encode() * 20)
    for i, p in enumerate(STATE_NOW)
}


def test_kill_9_mid_rewrite_leaves_one_state_and_the_nul_files_of_it(
    backend: str, tmp_path: Path
) -> None:
    """A restore rewriting every file in place (the HOT path), SIGKILLed at increasing delays:
    afterwards every file holds its content of one state, the same state for all, and the files
    search always reads (PostgreSQL: the generated flag; SQLite: 0010's predicate) are exactly
    the text files with a NUL after 8 KiB of that state."""
    import signal
    import time

    from tests.integration.restore_child import start_restore_child

    tdb = make_database(backend, tmp_path)

    async def seed() -> tuple[WorkspaceRef, int]:
        db, ws, snaps = await _setup(tmp_path, tdb.url)
        try:
            ref = await _workspace(db, "hotkill")
            ws.settings.history_enabled = False
            await ws.create_files(ref, list(STATE_SNAP.items()))
            snap = await snaps.create(ref, "snap")
            for path, content in STATE_NOW.items():
                await ws.save_file(ref, path, content)
            return ref, snap.id
        finally:
            await db.dispose()

    async def state(ref: WorkspaceRef) -> str:
        db, _ws, _snaps = await _setup(tmp_path, tdb.url)
        nul_sql = (
            "SELECT full_path FROM workspace_items WHERE session_id = :sid AND search_nul"
            if backend == "postgres"
            else "SELECT full_path FROM workspace_items WHERE session_id = :sid"
            " AND type = 'file' AND NOT is_binary AND size_bytes > 8192"
            " AND instr(content, X'00') > 0"
        )
        try:
            async with db.session() as s:
                rows = dict(
                    (
                        await s.execute(
                            text(
                                "SELECT full_path, content FROM workspace_items"
                                " WHERE session_id = :sid AND type = 'file'"
                            ),
                            {"sid": ref.session_id},
                        )
                    ).all()
                )
                listed = {
                    str(r[0]) for r in await s.execute(text(nul_sql), {"sid": ref.session_id})
                }
        finally:
            await db.dispose()
        which = "snap" if rows == STATE_SNAP else "now" if rows == STATE_NOW else "mixed"
        assert which != "mixed"
        expected = STATE_SNAP if which == "snap" else STATE_NOW
        assert listed == {p for p, c in expected.items() if b"\0" in c}
        return which

    try:
        ref, snap_id = asyncio.run(seed())
        outcomes = set()
        for delay in (0.0, 0.1, 0.3, 0.6, 30.0):
            proc = start_restore_child(CHILD, tdb.url, tmp_path, ref, snap_id)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
            if delay < 30:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
            outcomes.add(asyncio.run(state(ref)))
        assert "snap" in outcomes  # not killed, it completes
    finally:
        tdb.drop()
