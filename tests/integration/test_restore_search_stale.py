"""A large snapshot restore refreshes the search index of the files it rewrote after its commit
(migration 0012): until then search reads those files and stays exact; a save meanwhile is found;
a crash between the commit and the refresh leaves marks that the next start refreshes. Both
databases."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import CodeSession, User
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.search import SearchQuery, SearchService
from coolcoding.services.sessions import ref_of
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService
from coolcoding.settings import Settings
from tests.conftest import make_database, make_settings
from tests.integration.restore_child import start_restore_child

# Restored contents (files 0-19 and a binary), and the contents they replace.
OLD = {f"d{i % 3}/f{i}.py": f"restoredword{i} = {i}\ncommon line\n".encode() for i in range(20)}
NEW = {p: c.replace(b"restoredword", b"replacedword") for p, c in OLD.items()}


def _settings(tmp_path: Path, url: str) -> Settings:
    # Every restore of more than one file defers its refresh; search_max_files 3 makes a common
    # term walk the workspace (PostgreSQL's walk trusts the index's text otherwise).
    return make_settings(
        tmp_path, url, search_defer_refresh_min_files=2, search_max_files=3, history_coalesce_s=0.0
    )


Services = tuple[Database, WorkspaceService, SnapshotService]


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[Services]:
    """The services of one process (a restart opens them again), disposed at the end."""
    db = Database(settings)
    try:
        await upgrade(db.engine)
        ws = WorkspaceService(db, settings)
        ws.recorder = HistoryRecorder(settings)
        yield db, ws, SnapshotService(db, settings, ws)
    finally:
        await db.dispose()


def _run_on_fresh_database(
    backend: str,
    tmp_path: Path,
    body: Callable[[Settings, Database, WorkspaceService, SnapshotService], Awaitable[None]],
) -> None:
    """Runs ``body`` on a new database of ``backend`` with its services open, then drops it."""
    db_info = make_database(backend, tmp_path)

    async def run() -> None:
        settings = _settings(tmp_path, db_info.url)
        async with _opened(settings) as (db, ws, snaps):
            await body(settings, db, ws, snaps)

    try:
        asyncio.run(run())
    finally:
        db_info.drop()


async def _seed(db: Database, ws: WorkspaceService, snaps: SnapshotService) -> tuple[Any, int]:
    """A workspace at OLD, snapshotted, then changed to NEW."""
    async with db.session() as s:
        u = User(username="stale", email="stale@example.com", password_hash="x")
        s.add(u)
        await s.flush()
        sess = CodeSession(user_id=u.id, name="stale")
        s.add(sess)
        await s.commit()
    ref = ref_of(sess)
    await ws.create_files(ref, [*list(OLD.items()), ("img.bin", b"\x00\x01restoredbin")])
    snap = await snaps.create(ref, "old")
    for path, content in NEW.items():
        await ws.save_file(ref, path, content)
    await ws.save_file(ref, "img.bin", b"replacedword in text now\n")
    return ref, snap.id


async def _found(search: SearchService, ref: WorkspaceRef, q: str) -> list[str]:
    return sorted(f.path for f in (await search.search(ref, SearchQuery(q))).files)


async def _stale_marks(db: Database, session_id: int) -> int:
    async with db.session() as s:
        return int(
            (
                await s.execute(
                    text("SELECT COUNT(*) FROM workspace_search_stale WHERE session_id = :sid"),
                    {"sid": session_id},
                )
            ).scalar_one()
        )


async def _index_is_current(db: Database, session_id: int) -> bool:
    """Every text file's index entry holds its current text, and only text files have one."""
    postgres = db.engine.dialect.name == "postgresql"
    key = "item_id" if postgres else "rowid"
    async with db.session() as s:
        index = {
            int(i): str(b)
            for i, b in (
                await s.execute(
                    text(f"SELECT {key}, body FROM workspace_search WHERE session_id = :sid"),
                    {"sid": session_id},
                )
            ).all()
        }
        files = {
            int(i): bytes(c).decode()
            for i, c in (
                await s.execute(
                    text(
                        "SELECT id, content FROM workspace_items WHERE session_id = :sid"
                        " AND type = 'file' AND NOT is_binary"
                    ),
                    {"sid": session_id},
                )
            ).all()
        }
    return index == {i: c.lower() if postgres else c for i, c in files.items()}


def _cancel_refreshes(snaps: SnapshotService) -> None:
    """As if the process died right after the restore's commit (fault injection)."""
    snaps.schedule_search_refresh = lambda session_id: None  # type: ignore[method-assign]


def test_search_right_after_a_deferred_restore_is_exact(backend: str, tmp_path: Path) -> None:
    async def body(
        settings: Settings, db: Database, ws: WorkspaceService, snaps: SnapshotService
    ) -> None:
        ref, snap_id = await _seed(db, ws, snaps)
        search = SearchService(db, settings)
        assert len(await _found(search, ref, "replacedword")) == 21
        _cancel_refreshes(snaps)
        out = await snaps.restore(ref, snap_id)
        assert out["changed_files"] == 21
        # The index still holds the replaced text; the marks make search read the files.
        assert await _stale_marks(db, ref.session_id) == 21
        assert not await _index_is_current(db, ref.session_id)
        assert await _found(search, ref, "replacedword") == []
        assert await _found(search, ref, "restoredword7 ") == ["d1/f7.py"]
        assert len(await _found(search, ref, "restoredword")) == 20  # a walk (> 3 files)
        assert len(await _found(search, ref, "common line")) == 20
        assert await _found(search, ref, "restoredbin") == []  # binary: never matched
        # The refresh (here by hand) drops the marks; the index is then current.
        assert await snaps.refresh_all_stale() == 1
        assert await _stale_marks(db, ref.session_id) == 0
        assert await _index_is_current(db, ref.session_id)
        assert await _found(search, ref, "restoredword7 ") == ["d1/f7.py"]
        assert await _found(search, ref, "replacedword") == []

    _run_on_fresh_database(backend, tmp_path, body)


def test_a_save_in_the_stale_window_is_found_and_kept_by_the_refresh(
    backend: str, tmp_path: Path
) -> None:
    async def body(
        settings: Settings, db: Database, ws: WorkspaceService, snaps: SnapshotService
    ) -> None:
        ref, snap_id = await _seed(db, ws, snaps)
        search = SearchService(db, settings)
        _cancel_refreshes(snaps)
        await snaps.restore(ref, snap_id)
        assert await _stale_marks(db, ref.session_id) == 21
        await ws.save_file(ref, "d0/f3.py", b"savedmeanwhile = 3\n")
        assert await _found(search, ref, "savedmeanwhile") == ["d0/f3.py"]
        assert "d0/f3.py" not in await _found(search, ref, "restoredword")
        await snaps.refresh_all_stale()
        assert await _index_is_current(db, ref.session_id)
        assert await _found(search, ref, "savedmeanwhile") == ["d0/f3.py"]
        # The refresh scheduled as usual (not cancelled) also ends current.
        snaps2 = SnapshotService(db, settings, ws)
        await snaps2.restore(ref, (await snaps2.create(ref, "again")).id)
        await ws.save_file(ref, "d0/f3.py", b"second = 3\n")
        out = await snaps2.restore(ref, snap_id)
        assert out["changed_files"] >= 1
        await snaps2.search_refreshed()
        assert await _stale_marks(db, ref.session_id) == 0
        assert await _index_is_current(db, ref.session_id)

    _run_on_fresh_database(backend, tmp_path, body)


CHILD = """
import asyncio, sys
from coolcoding.db.engine import Database
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService
from coolcoding.settings import Settings

async def main():
    settings = Settings(database_url=sys.argv[1], data_dir=sys.argv[2], environment="test",
                        search_defer_refresh_min_files=2)
    db = Database(settings)
    ws = WorkspaceService(db, settings)
    snaps = SnapshotService(db, settings, ws)
    # The refresh never starts: the process is killed between the commit and the refresh.
    snaps.schedule_search_refresh = lambda session_id: None
    await snaps.restore(WorkspaceRef(int(sys.argv[3]), sys.argv[4]), int(sys.argv[5]))
    print("restored", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_kill_between_restore_commit_and_refresh_then_start_refreshes(
    backend: str, tmp_path: Path
) -> None:
    def kill_after_restore(url: str, ref: WorkspaceRef, snap_id: int) -> None:
        proc = start_restore_child(CHILD, url, tmp_path, ref, snap_id)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"restored"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    async def body(
        settings: Settings, db: Database, ws: WorkspaceService, snaps: SnapshotService
    ) -> None:
        ref, snap_id = await _seed(db, ws, snaps)
        await db.dispose()  # this process holds no connection while the child restores
        await asyncio.to_thread(kill_after_restore, settings.database_url, ref, snap_id)
        # A restart: the services open again.
        async with _opened(settings) as (db2, _ws2, snaps2):
            assert await _stale_marks(db2, ref.session_id) == 21
            assert not await _index_is_current(db2, ref.session_id)
            await snaps2.start()  # catches up on the marks left behind
            assert snaps2._catch_up is not None
            await snaps2._catch_up
            await snaps2.stop()
            assert await _stale_marks(db2, ref.session_id) == 0
            assert await _index_is_current(db2, ref.session_id)

    _run_on_fresh_database(backend, tmp_path, body)
