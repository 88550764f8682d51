"""The change events of a snapshot restore: every path it removed is deleted (deepest first: a
folder's files, then the folder), every item left is written; a restore that changes nothing
deletes nothing. The removed paths come from the safety snapshot (the restore no longer reads the
whole tree before). Both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import CodeSession, User
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.sessions import ref_of
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import Change, WorkspaceService
from tests.conftest import make_database, make_settings


def test_restore_events_delete_exactly_the_removed_paths(backend: str, tmp_path: Path) -> None:
    async def run(url: str) -> None:
        settings = make_settings(tmp_path, url)
        db = Database(settings)
        await upgrade(db.engine)
        ws = WorkspaceService(db, settings)
        ws.recorder = HistoryRecorder(settings)
        snaps = SnapshotService(db, settings, ws)
        events: list[list[Change]] = []

        async def sink(_uuid: str, changes: Sequence[Change]) -> None:
            events.append(list(changes))

        try:
            async with db.session() as s:
                u = User(username="ev", email="ev@example.com", password_hash="x")
                s.add(u)
                await s.flush()
                sess = CodeSession(user_id=u.id, name="ev")
                s.add(sess)
                await s.commit()
            ref = ref_of(sess)
            await ws.create_files(ref, [("a.py", b"a\n"), ("keep/b.py", b"b\n")])
            snap = await snaps.create(ref, "v1")
            await ws.create_files(ref, [("gone/x.py", b"x\n"), ("gone/deep/y.py", b"y\n")])
            await ws.save_file(ref, "a.py", b"changed\n")
            ws.sinks.append(sink)
            await snaps.restore(ref, snap.id)
            deletes = [c.path for c in events[-1] if c.kind == "delete"]
            assert deletes == ["gone/x.py", "gone/deep/y.py", "gone/deep", "gone"]
            writes = sorted(c.path for c in events[-1] if c.kind != "delete")
            assert writes == ["a.py", "keep", "keep/b.py"]
            # Nothing differs: no deletion, every item written.
            await snaps.restore(ref, snap.id)
            assert [c.kind for c in events[-1] if c.kind == "delete"] == []
            assert sorted(c.path for c in events[-1]) == ["a.py", "keep", "keep/b.py"]
        finally:
            await db.dispose()

    db_info = make_database(backend, tmp_path)
    try:
        asyncio.run(run(db_info.url))
    finally:
        db_info.drop()
