"""File history, snapshots, the trash and forks over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.integration.history_helpers import store_problems

server = module_live_server("history", history_coalesce_s=0.0, snapshot_before_delete_min_files=3)


def _save(c: httpx.Client, sid: str, path: str, content: str, **kw: object) -> httpx.Response:
    r = c.post(f"/api/workspace/{sid}/file/{path}", json={"content": content, **kw})
    assert r.status_code in (200, 201), r.text
    return r


def _versions(c: httpx.Client, sid: str, path: str | None = None) -> list[dict[str, object]]:
    params = {"path": path} if path else {}
    r = c.get(f"/api/workspace/{sid}/history", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["versions"])


def _read(c: httpx.Client, sid: str, path: str) -> httpx.Response:
    return c.get(f"/api/workspace/{sid}/file/{path}")


@pytest.fixture
def other(server: LiveServer) -> Iterator[UserClient]:
    u = register_user(server)
    yield u
    u.client.close()


def test_versions_list_get_diff_restore(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    for i in range(3):
        _save(c, sid, "a.py", f"x = {i}\nprint(x)\n")
    vs = _versions(c, sid, "a.py")
    assert [v["kind"] for v in vs] == ["write"] * 3
    assert vs[0]["source"] == "editor" and vs[0]["author_id"] == user.user_id
    oldest = vs[-1]["id"]
    got = c.get(f"/api/workspace/{sid}/history/{oldest}").json()
    assert got["content"] == "x = 0\nprint(x)\n" and got["encoding"] == "utf-8"
    d = c.get(f"/api/workspace/{sid}/history/diff", params={"from": oldest}).json()
    assert d["from_content"] == "x = 0\nprint(x)\n" and d["to_content"] == "x = 2\nprint(x)\n"
    assert "-x = 0\n+x = 2\n" in d["unified"] and d["to"]["current"] is True
    d2 = c.get(
        f"/api/workspace/{sid}/history/diff", params={"from": oldest, "to": vs[1]["id"]}
    ).json()
    assert d2["to_content"] == "x = 1\nprint(x)\n"
    r = c.post(f"/api/workspace/{sid}/history/{oldest}/restore", json={})
    assert r.status_code == 200, r.text
    assert r.json()["recreated"] is False and r.json()["previous_version"] == 3
    assert _read(c, sid, "a.py").json()["content"] == "x = 0\nprint(x)\n"
    vs2 = _versions(c, sid, "a.py")
    assert len(vs2) == 4 and vs2[0]["source"] == "restore"  # a new version, history kept
    assert store_problems(server) == []


def test_restore_with_stale_base_is_409_not_lost(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "f.txt", "one\n")
    _save(c, sid, "f.txt", "two\n")
    first = _versions(c, sid, "f.txt")[-1]["id"]
    # The terminal (or another tab) writes while the user looks at version 2.
    _save(c, sid, "f.txt", "three\n")
    r = c.post(f"/api/workspace/{sid}/history/{first}/restore", json={"base_version": 2})
    assert r.status_code == 409 and r.json()["error"] == "version_conflict"
    assert _read(c, sid, "f.txt").json()["content"] == "three\n"


def test_history_follows_rename_and_survives_delete(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "old.txt", "v1\n")
    _save(c, sid, "old.txt", "v2\n")
    assert (
        c.post(f"/api/workspace/{sid}/move", json={"from": "old.txt", "to": "new.txt"}).status_code
        == 200
    )
    vs = _versions(c, sid, "new.txt")
    assert len(vs) == 2 and _versions(c, sid, "old.txt") == []
    assert c.delete(f"/api/workspace/{sid}/file/new.txt").status_code == 204
    vs = _versions(c, sid, "new.txt")
    assert vs[0]["kind"] == "delete" and vs[0]["source"] == "editor"
    r = c.post(f"/api/workspace/{sid}/history/{vs[-1]['id']}/restore", json={})
    assert r.status_code == 200 and r.json()["recreated"] is True and r.json()["path"] == "new.txt"
    assert _read(c, sid, "new.txt").json()["content"] == "v1\n"
    # Restoring the deletion marker itself is refused clearly.
    r = c.post(f"/api/workspace/{sid}/history/{vs[0]['id']}/restore", json={})
    assert r.status_code == 400 and r.json()["error"] == "version_is_deletion"


def test_restore_to_a_path_now_a_folder_is_409(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "x", "file\n")
    vid = _versions(c, sid, "x")[0]["id"]
    c.delete(f"/api/workspace/{sid}/file/x")
    _save(c, sid, "x/inner.txt", "now a folder\n")
    r = c.post(f"/api/workspace/{sid}/history/{vid}/restore", json={})
    assert r.status_code == 409 and r.json()["error"] == "is_a_folder"
    r = c.post(f"/api/workspace/{sid}/history/{vid}/restore", json={"to": "x-restored"})
    assert r.status_code == 200 and _read(c, sid, "x-restored").json()["content"] == "file\n"


def test_coalescing_and_retention(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    settings = server.settings
    settings.history_coalesce_s = 3600.0
    try:
        for i in range(20):
            _save(c, sid, "busy.txt", f"{i}\n")
    finally:
        settings.history_coalesce_s = 0.0
    vs = _versions(c, sid, "busy.txt")
    assert len(vs) == 1 and vs[0]["changes"] == 20
    got = c.get(f"/api/workspace/{sid}/history/{vs[0]['id']}").json()
    assert got["content"] == "19\n"
    settings.history_max_versions = 5
    try:
        for i in range(12):
            _save(c, sid, "kept.txt", f"line {i}\n" * 50)
    finally:
        settings.history_max_versions = 50
    vs = _versions(c, sid, "kept.txt")
    assert len(vs) == 5
    # Every kept version still reads back (its delta bases were not purged with it).
    for v in vs:
        r = c.get(f"/api/workspace/{sid}/history/{v['id']}")
        assert r.status_code == 200 and r.json()["content"].startswith("line ")
    assert store_problems(server) == []


def test_snapshot_browse_restore_is_atomic_and_safe(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "src/a.py", "A\n")
    _save(c, sid, "src/deep/b.py", "B\n")
    r = c.post(f"/api/workspace/{sid}/snapshots", json={"name": "good"})
    assert r.status_code == 201 and r.json()["file_count"] == 2
    snap = r.json()["id"]
    _save(c, sid, "src/a.py", "broken\n")
    _save(c, sid, "junk.txt", "junk\n")
    files = c.get(f"/api/workspace/{sid}/snapshots/{snap}/files").json()["items"]
    assert {f["path"] for f in files} == {"src", "src/a.py", "src/deep", "src/deep/b.py"}
    f = c.get(f"/api/workspace/{sid}/snapshots/{snap}/file/src/a.py").json()
    assert f["content"] == "A\n"
    r = c.post(f"/api/workspace/{sid}/snapshots/{snap}/restore")
    assert r.status_code == 200, r.text
    safety = r.json()["safety_snapshot_id"]
    paths = {i["path"] for i in c.get(f"/api/workspace/{sid}/files").json()["items"]}
    assert paths == {"src", "src/a.py", "src/deep", "src/deep/b.py"}
    assert _read(c, sid, "src/a.py").json()["content"] == "A\n"
    # Editing after a restore works (parent links, versions are consistent).
    _save(c, sid, "src/deep/c.py", "C\n")
    # The state before the restore is itself a snapshot, restorable.
    kinds = {
        s["id"]: s["kind"] for s in c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]
    }
    assert kinds[safety] == "auto"
    assert c.post(f"/api/workspace/{sid}/snapshots/{safety}/restore").status_code == 200
    assert _read(c, sid, "junk.txt").json()["content"] == "junk\n"
    assert _read(c, sid, "src/a.py").json()["content"] == "broken\n"
    assert c.delete(f"/api/workspace/{sid}/snapshots/{snap}").status_code == 204
    assert c.get(f"/api/workspace/{sid}/snapshots/{snap}/files").status_code == 404
    assert store_problems(server) == []


def test_trash_file_and_folder_restore(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    for i in range(5):
        _save(c, sid, f"lib/m{i}.py", f"# {i}\n")
    _save(c, sid, "note.txt", "keep me\n")
    assert c.delete(f"/api/workspace/{sid}/file/lib").status_code == 204
    assert c.delete(f"/api/workspace/{sid}/file/note.txt").status_code == 204
    trash = c.get(f"/api/workspace/{sid}/trash").json()["snapshots"]
    by_path = {t["root_path"]: t for t in trash}
    assert by_path["lib"]["root_type"] == "folder" and by_path["lib"]["file_count"] == 5
    # More files than snapshot_before_delete_min_files: a whole-workspace snapshot first.
    autos = c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]
    assert any(s["kind"] == "auto" and "lib" in s["name"] for s in autos)
    r = c.post(f"/api/workspace/{sid}/trash/{by_path['lib']['id']}/restore")
    assert r.status_code == 200 and r.json()["restored_items"] == 6
    assert _read(c, sid, "lib/m3.py").json()["content"] == "# 3\n"
    _save(c, sid, "note.txt", "a new note\n")
    r = c.post(f"/api/workspace/{sid}/trash/{by_path['note.txt']['id']}/restore")
    assert r.status_code == 409 and r.json()["error"] == "restore_target_exists"
    assert _read(c, sid, "note.txt").json()["content"] == "a new note\n"
    assert c.delete(f"/api/workspace/{sid}/trash/{by_path['note.txt']['id']}").status_code == 204
    assert c.get(f"/api/workspace/{sid}/trash").json()["snapshots"] == []
    assert store_problems(server) == []


def test_deleted_workspace_goes_to_trash_and_comes_back(
    user: UserClient, server: LiveServer
) -> None:
    c, sid = user.client, user.new_session("precious")
    _save(c, sid, "a/b.txt", "bytes\n")
    _save(c, sid, "a/b.txt", "more bytes\n")
    assert c.delete(f"/api/sessions/{sid}").status_code == 204
    assert c.get(f"/api/sessions/{sid}").status_code == 404
    trash = c.get("/api/trash").json()["snapshots"]
    assert len(trash) == 1 and trash[0]["name"] == "precious"
    r = c.post(f"/api/trash/{trash[0]['id']}/restore")
    assert r.status_code == 201, r.text
    assert r.json()["uuid"] == sid and r.json()["name"] == "precious"
    assert _read(c, sid, "a/b.txt").json()["content"] == "more bytes\n"
    assert c.get("/api/trash").json()["snapshots"] == []
    assert store_problems(server) == []


def test_fork_copies_files_and_keeps_lineage(user: UserClient, other: UserClient) -> None:
    c, sid = user.client, user.new_session("origin")
    _save(c, sid, "pkg/main.py", "print('hi')\n")
    r = c.post(f"/api/sessions/{sid}/fork", json={})
    assert r.status_code == 201, r.text
    fork = r.json()
    assert fork["forked_from_uuid"] == sid and fork["forked_from_name"] == "origin"
    assert fork["name"] == "origin (fork)"
    fid = fork["uuid"]
    assert _read(c, fid, "pkg/main.py").json()["content"] == "print('hi')\n"
    _save(c, fid, "pkg/main.py", "print('fork')\n")
    assert _read(c, sid, "pkg/main.py").json()["content"] == "print('hi')\n"
    assert c.get(f"/api/sessions/{sid}").json()["fork_count"] == 1
    # Another user cannot fork a workspace not shared with them (indistinguishable from none).
    r = other.client.post(f"/api/sessions/{sid}/fork", json={})
    assert r.status_code == 404


def test_other_users_cannot_reach_history(user: UserClient, other: UserClient) -> None:
    c, sid = user.client, user.new_session()
    _save(c, sid, "s.txt", "secret\n")
    vid = _versions(c, sid, "s.txt")[0]["id"]
    snap = c.post(f"/api/workspace/{sid}/snapshots", json={"name": "s"}).json()["id"]
    o = other.client
    assert o.get(f"/api/workspace/{sid}/history").status_code == 404
    assert o.get(f"/api/workspace/{sid}/history/{vid}").status_code == 404
    assert o.get(f"/api/workspace/{sid}/snapshots/{snap}/files").status_code == 404
    # A version id of someone else's workspace through one's own workspace: 404, not content.
    mine = other.new_session()
    assert o.get(f"/api/workspace/{mine}/history/{vid}").status_code == 404
    assert o.post(f"/api/workspace/{mine}/history/{vid}/restore", json={}).status_code == 404
    assert o.get(f"/api/workspace/{mine}/snapshots/{snap}/files").status_code == 404
    assert o.post(f"/api/workspace/{mine}/snapshots/{snap}/restore").status_code == 404


def test_bad_input_is_4xx(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    assert c.get(f"/api/workspace/{sid}/history/0").status_code == 422
    assert c.get(f"/api/workspace/{sid}/history/999999").status_code == 404
    assert c.get(f"/api/workspace/{sid}/history/diff").status_code == 422
    assert c.get(f"/api/workspace/{sid}/history", params={"path": "../etc"}).status_code == 400
    assert c.post(f"/api/workspace/{sid}/snapshots/123456/restore").status_code == 404
    assert c.post("/api/trash/123456/restore").status_code == 404


def test_storage_counts_shared_content_once(user: UserClient) -> None:
    c, sid = user.client, user.new_session()
    big = "y" * 50_000 + "\n"
    _save(c, sid, "a.txt", big)
    c.post(f"/api/workspace/{sid}/snapshots", json={"name": "1"})
    c.post(f"/api/workspace/{sid}/snapshots", json={"name": "2"})
    sid2 = user.new_session()
    _save(c, sid2, "copy.txt", big)
    st = c.get("/api/storage").json()
    assert st["files_bytes"] == 2 * len(big)
    # One distinct content: counted once however many versions and snapshots share it.
    assert st["history_content_bytes"] == len(big)


def test_snapshot_restore_records_a_version_per_changed_file(
    user: UserClient, server: LiveServer
) -> None:
    """A snapshot restore shows in each file's history: a "restore" version of every file whose
    content it changed or brought back, a deletion of every file it removed, nothing for files
    it left as they were."""
    c, sid = user.client, user.new_session()
    _save(c, sid, "a.py", "A1\n")
    _save(c, sid, "b.py", "B1\n")
    _save(c, sid, "same.py", "S\n")
    snap = c.post(f"/api/workspace/{sid}/snapshots", json={"name": "v1"}).json()["id"]
    _save(c, sid, "a.py", "A2\n")
    assert c.delete(f"/api/workspace/{sid}/file/b.py").status_code == 204
    _save(c, sid, "new/c.py", "C\n")
    same_before = _versions(c, sid, "same.py")
    r = c.post(f"/api/workspace/{sid}/snapshots/{snap}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["changed_files"] == 3
    a = _versions(c, sid, "a.py")[0]
    assert a["source"] == "restore" and a["kind"] == "write"
    assert c.get(f"/api/workspace/{sid}/history/{a['id']}").json()["content"] == "A1\n"
    assert a["author_id"] == user.user_id
    b = _versions(c, sid, "b.py")
    assert [v["kind"] for v in b[:2]] == ["write", "delete"] and b[0]["source"] == "restore"
    gone = _versions(c, sid, "new/c.py")[0]
    assert gone["kind"] == "delete" and gone["source"] == "restore"
    assert _versions(c, sid, "same.py") == same_before
    # The next edit builds on the restored version; undoing the restore is itself recorded.
    _save(c, sid, "a.py", "A3\n")
    assert [v["source"] for v in _versions(c, sid, "a.py")[:2]] == ["editor", "restore"]
    safety = r.json()["safety_snapshot_id"]
    assert c.post(f"/api/workspace/{sid}/snapshots/{safety}/restore").status_code == 200
    a = _versions(c, sid, "a.py")[0]
    assert a["source"] == "restore"
    assert c.get(f"/api/workspace/{sid}/history/{a['id']}").json()["content"] == "A2\n"
    assert store_problems(server) == []


def _index_bodies(server: LiveServer, sid: str) -> dict[str, str]:
    """The search index's entries of a workspace, by path (PostgreSQL stores the folded text)."""

    async def read() -> dict[str, str]:
        import uuid

        from sqlalchemy import select, text

        from coolcoding.db.engine import Database
        from coolcoding.db.models import CodeSession

        db = Database(server.settings)
        try:
            async with db.session() as s:
                session_id = (
                    await s.execute(
                        select(CodeSession.id).where(CodeSession.uuid == uuid.UUID(sid))
                    )
                ).scalar_one()
                key = "item_id" if db.engine.dialect.name == "postgresql" else "rowid"
                rows = await s.execute(
                    text(
                        f"SELECT i.full_path, w.body FROM workspace_search w"
                        f" JOIN workspace_items i ON i.id = w.{key} WHERE i.session_id = :sid"
                    ),
                    {"sid": session_id},
                )
                return {p: str(b) for p, b in rows.all()}
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_snapshot_restore_leaves_search_exactly_right(user: UserClient, server: LiveServer) -> None:
    """A restore rewrites changed files without the per-row index trigger and refreshes their
    index entries itself: search finds the restored contents and no longer the replaced ones,
    in files rewritten, brought back, removed and left alone, and a binary restored over text
    leaves no entry."""
    c, sid = user.client, user.new_session()
    _save(c, sid, "a.py", "restoredalpha = 1\n")
    _save(c, sid, "b.py", "restoredbeta = 2\n")
    _save(c, sid, "same.py", "unchangedgamma = 3\n")
    bin_v1 = base64.b64encode(b"\x00\x01binaryzeta").decode()
    _save(c, sid, "img.bin", bin_v1, encoding="base64")
    _save(c, sid, "txt.md", "textualeta\n")
    # Text by its sniffed prefix, but a NUL after it: PostgreSQL cannot index it (not UTF-8 text
    # to it), the set-based refresh falls back to the per-row trigger for the others.
    _save(c, sid, "late.txt", "x" * 9000 + "\x00 latenulone\n")
    snap = c.post(f"/api/workspace/{sid}/snapshots", json={"name": "v1"}).json()["id"]
    _save(c, sid, "a.py", "replacedalpha = 1\n")
    assert c.delete(f"/api/workspace/{sid}/file/b.py").status_code == 204
    _save(c, sid, "c.py", "replaceddelta = 4\n")
    _save(c, sid, "img.bin", "nowtextzeta\n")
    _save(c, sid, "txt.md", base64.b64encode(b"\x00binaryeta").decode(), encoding="base64")
    _save(c, sid, "late.txt", "y" * 9000 + "\x00 latenultwo\n")

    def found(q: str) -> list[str]:
        r = c.get(f"/api/workspace/{sid}/search", params={"q": q})
        assert r.status_code == 200, r.text
        return sorted(f["path"] for f in r.json()["files"])

    assert found("replaced") == ["a.py", "c.py"]
    assert found("nowtextzeta") == ["img.bin"]
    r = c.post(f"/api/workspace/{sid}/snapshots/{snap}/restore")
    assert r.status_code == 200, r.text
    assert found("replaced") == []
    assert found("nowtextzeta") == []
    assert found("restoredalpha") == ["a.py"]
    assert found("restoredbeta") == ["b.py"]
    assert found("unchangedgamma") == ["same.py"]
    assert found("textualeta") == ["txt.md"]
    # The index itself holds exactly the text files, each with its current text.
    index = _index_bodies(server, sid)
    assert sorted(index) == sorted(
        ["a.py", "b.py", "same.py", "txt.md"]
        + ([] if server.settings.database_url.startswith("postgresql") else ["late.txt"])
    )
    assert index["a.py"].lower() == "restoredalpha = 1\n"
    assert index["txt.md"].lower() == "textualeta\n"
    # Saves after the restore are indexed again by the trigger (no deferral left behind).
    _save(c, sid, "a.py", "afterwardsalpha = 1\n")
    assert found("afterwardsalpha") == ["a.py"]
    assert found("restoredalpha") == []
