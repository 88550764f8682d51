"""The issue's "What to build" and "Bad input and faults" items not covered elsewhere, on both
databases: a zip import is preceded by an automatic snapshot; uploads and terminal deletions
(an ``rm``) are versions, recoverable from history; a snapshot of a workspace at its quota;
a trash restore beyond the quota is a clear 413 that loses nothing; automatic snapshots are
kept by count."""

from __future__ import annotations

import asyncio
import io
import zipfile

import httpx

from coolcoding.db.engine import Database
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceService
from tests.conftest import LiveServer, UserClient, module_live_server
from tests.integration.history_helpers import ref_of_sid, store_problems

QUOTA = 4_000
server = module_live_server(
    "history-faults", history_coalesce_s=0.0, max_workspace_bytes=QUOTA, snapshot_max_auto=2
)


def _save(c: httpx.Client, sid: str, path: str, content: str) -> httpx.Response:
    r = c.post(f"/api/workspace/{sid}/file/{path}", json={"content": content})
    assert r.status_code in (200, 201), r.text
    return r


def _versions(c: httpx.Client, sid: str, path: str) -> list[dict[str, object]]:
    r = c.get(f"/api/workspace/{sid}/history", params={"path": path})
    assert r.status_code == 200, r.text
    return list(r.json()["versions"])


def _services(server: LiveServer) -> tuple[Database, WorkspaceService, SnapshotService]:
    db = Database(server.settings)
    ws = WorkspaceService(db, server.settings)
    ws.recorder = HistoryRecorder(server.settings)
    return db, ws, SnapshotService(db, server.settings, ws)


def test_zip_import_takes_a_snapshot_first(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "main.py", "print(1)\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lib/a.py", "A\n")
        z.writestr("lib/b.py", "B\n")
    r = c.post(f"/api/workspace/{sid}/import", content=buf.getvalue())
    assert r.status_code == 200, r.text
    snaps = c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]
    before = [s for s in snaps if s["kind"] == "auto" and "import" in s["name"]]
    assert len(before) == 1
    files = c.get(f"/api/workspace/{sid}/snapshots/{before[0]['id']}/files").json()["items"]
    assert [f["path"] for f in files] == ["main.py"]
    # Undoing the import is restoring that snapshot.
    assert c.post(f"/api/workspace/{sid}/snapshots/{before[0]['id']}/restore").status_code == 200
    paths = {i["path"] for i in c.get(f"/api/workspace/{sid}/files").json()["items"]}
    assert paths == {"main.py"}


def test_upload_is_a_version_with_its_source(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "data.txt", "typed\n")
    r = c.put(f"/api/workspace/{sid}/upload/data.txt", content=b"uploaded\n")
    assert r.status_code == 200, r.text
    vs = _versions(c, sid, "data.txt")
    assert [v["source"] for v in vs] == ["upload", "editor"]
    assert c.get(f"/api/workspace/{sid}/history/{vs[0]['id']}").json()["content"] == "uploaded\n"


def test_rm_in_the_terminal_is_recoverable_from_history(
    user: UserClient, server: LiveServer
) -> None:
    """What the sync does for an ``rm`` in the terminal (a delete with source "sandbox"): a
    deletion version; the content is in the file's earlier version and in the trash."""
    c, sid = user.client, user.new_session()
    _save(c, sid, "notes.md", "precious\n")

    async def rm() -> None:
        db, ws, _ = _services(server)
        try:
            await ws.delete(await ref_of_sid(db, sid), "notes.md", source="sandbox")
        finally:
            await db.dispose()

    asyncio.run(rm())
    assert c.get(f"/api/workspace/{sid}/file/notes.md").status_code == 404
    vs = _versions(c, sid, "notes.md")
    assert vs[0]["kind"] == "delete" and vs[0]["source"] == "terminal"
    r = c.post(f"/api/workspace/{sid}/history/{vs[1]['id']}/restore", json={})
    assert r.status_code == 200 and r.json()["recreated"] is True
    assert c.get(f"/api/workspace/{sid}/file/notes.md").json()["content"] == "precious\n"
    trash = c.get(f"/api/workspace/{sid}/trash").json()["snapshots"]
    assert [t["root_path"] for t in trash] == ["notes.md"]
    assert trash[0]["meta"]["source"] == "terminal"


def test_snapshot_at_quota_and_trash_restore_beyond_it(
    user: UserClient, server: LiveServer
) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "big.txt", "x" * (QUOTA - 100))
    # At its quota: a snapshot is still taken (history is not the workspace's bytes).
    r = c.post(f"/api/workspace/{sid}/snapshots", json={"name": "full"})
    assert r.status_code == 201, r.text
    r = c.post(f"/api/workspace/{sid}/file/more.txt", json={"content": "y" * 200})
    assert r.status_code == 413 and r.json()["error"] == "quota_exceeded"
    assert c.delete(f"/api/workspace/{sid}/file/big.txt").status_code == 204
    _save(c, sid, "new.txt", "z" * (QUOTA - 100))
    entry = c.get(f"/api/workspace/{sid}/trash").json()["snapshots"][0]["id"]
    r = c.post(f"/api/workspace/{sid}/trash/{entry}/restore")
    assert r.status_code == 413 and r.json()["error"] == "quota_exceeded"
    # Nothing lost: the entry is still in the trash, the workspace as it was.
    assert [t["id"] for t in c.get(f"/api/workspace/{sid}/trash").json()["snapshots"]] == [entry]
    paths = {i["path"] for i in c.get(f"/api/workspace/{sid}/files").json()["items"]}
    assert paths == {"new.txt"}
    # The snapshot of the full workspace restores (it replaces the tree: within the quota).
    assert (
        c.post(f"/api/workspace/{sid}/snapshots/{_snapshot_named(c, sid)}/restore").status_code
        == 200
    )
    assert c.get(f"/api/workspace/{sid}/file/big.txt").json()["size"] == QUOTA - 100
    assert store_problems(server) == []


def _snapshot_named(c: httpx.Client, sid: str) -> int:
    snaps = c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]
    return int(next(s["id"] for s in snaps if s["name"] == "full"))


def test_automatic_snapshots_are_kept_by_count(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "a.txt", "a\n")

    async def run() -> dict[str, int]:
        db, _ws, snaps = _services(server)
        try:
            ref = await ref_of_sid(db, sid)
            for i in range(4):
                await snaps.create(ref, f"auto {i}", kind="auto")
            await snaps.create(ref, "mine")  # manual: never purged by count
            return await snaps.purge_once()
        finally:
            await db.dispose()

    done = asyncio.run(run())
    assert done["snapshots"] >= 2
    names = [s["name"] for s in c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]]
    assert names == ["mine", "auto 3", "auto 2"]
    assert store_problems(server) == []


def test_restore_rewrites_only_what_differs(user: UserClient, server: LiveServer) -> None:
    """A restore writes only what differs from the snapshot, including a folder that became a
    file and back: afterwards the tree is exactly the snapshot's, every parent link right, and
    an unchanged file keeps its version."""
    c, sid = user.client, user.new_session()
    _save(c, sid, "a/b.txt", "B\n")
    _save(c, sid, "same/s.txt", "S\n")
    _save(c, sid, "x.txt", "X1\n")
    snap = c.post(f"/api/workspace/{sid}/snapshots", json={"name": "t"}).json()["id"]
    same_version = c.get(f"/api/workspace/{sid}/file/same/s.txt").json()["version"]
    assert c.delete(f"/api/workspace/{sid}/file/a").status_code == 204
    _save(c, sid, "a", "a file now\n")
    _save(c, sid, "c/d/e.txt", "E\n")
    _save(c, sid, "x.txt", "X2\n")
    r = c.post(f"/api/workspace/{sid}/snapshots/{snap}/restore")
    assert r.status_code == 200 and r.json()["restored_items"] == 5
    items = {i["path"]: i for i in c.get(f"/api/workspace/{sid}/files").json()["items"]}
    assert set(items) == {"a", "a/b.txt", "same", "same/s.txt", "x.txt"}
    assert items["a"]["type"] == "folder"
    assert items["same/s.txt"]["version"] == same_version
    assert c.get(f"/api/workspace/{sid}/file/x.txt").json()["content"] == "X1\n"
    assert c.get(f"/api/workspace/{sid}/file/a/b.txt").json()["content"] == "B\n"

    async def parents() -> list[str]:
        from sqlalchemy import text

        db = Database(server.settings)
        try:
            ref = await ref_of_sid(db, sid)
            async with db.session() as s:
                rows = (
                    await s.execute(
                        text(
                            "SELECT w.full_path, p.full_path FROM workspace_items w LEFT JOIN"
                            " workspace_items p ON p.id = w.parent_id WHERE w.session_id = :sid"
                        ),
                        {"sid": ref.session_id},
                    )
                ).all()
            return [
                path
                for path, parent in rows
                if parent != (path.rsplit("/", 1)[0] if "/" in path else None)
            ]
        finally:
            await db.dispose()

    assert asyncio.run(parents()) == []
    _save(c, sid, "a/new.txt", "N\n")  # the restored folder takes new files
    assert store_problems(server) == []
