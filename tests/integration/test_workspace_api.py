"""Workspace files in the database over real HTTP, on SQLite and PostgreSQL."""

import asyncio
import base64
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from coolcoding.db.models import CodeSession, WorkspaceItem
from coolcoding.platform import Platform
from tests.conftest import LiveServer, UserClient, register_user, start_live_server


def _save(c: httpx.Client, sid: str, path: str, content: str, **kw: object) -> httpx.Response:
    return c.post(f"/api/workspace/{sid}/file/{path}", json={"content": content, **kw})


def _paths(c: httpx.Client, sid: str) -> list[str]:
    r = c.get(f"/api/workspace/{sid}/files")
    assert r.status_code == 200
    return [i["path"] for i in r.json()["items"]]


def test_nested_files_and_folders_to_any_depth(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    deep = "/".join(f"d{i}" for i in range(20)) + "/leaf.txt"
    assert _save(c, sid, deep, "deep").status_code == 201
    assert _save(c, sid, "src/pkg/mod.py", "x = 1\n").status_code == 201
    paths = _paths(c, sid)
    assert deep in paths and "d0/d1" in paths and "src/pkg" in paths
    items = {i["path"]: i for i in c.get(f"/api/workspace/{sid}/files").json()["items"]}
    assert items["src"]["type"] == "folder" and items["src/pkg/mod.py"]["type"] == "file"
    assert (
        items["src/pkg/mod.py"]["size"] == 6 and len(items["src/pkg/mod.py"]["content_hash"]) == 64
    )
    r = c.get(f"/api/workspace/{sid}/file/{deep}")
    assert (
        r.status_code == 200 and r.json()["content"] == "deep" and r.json()["encoding"] == "utf-8"
    )


def test_text_and_binary_round_trip_byte_for_byte(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    text = "héllo ✓ 世界\r\nline2\ttab\n\n"
    assert _save(c, sid, "u.txt", text).status_code == 201
    r = c.get(f"/api/workspace/{sid}/file/u.txt")
    assert r.json()["content"] == text
    assert c.get(f"/api/workspace/{sid}/file/u.txt", params={"raw": 1}).content == text.encode()
    blob = os.urandom(4096) + b"\x00\xff\xfe"
    r = _save(c, sid, "img/blob.bin", base64.b64encode(blob).decode(), encoding="base64")
    assert r.status_code == 201 and r.json()["is_binary"] is True and r.json()["size"] == len(blob)
    got = c.get(f"/api/workspace/{sid}/file/img/blob.bin").json()
    assert got["encoding"] == "base64" and base64.b64decode(got["content"]) == blob
    assert c.get(f"/api/workspace/{sid}/file/img/blob.bin", params={"raw": 1}).content == blob


def test_stale_save_is_rejected_with_409_and_current_version(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    v1 = _save(c, sid, "a.py", "one").json()["version"]
    v2 = _save(c, sid, "a.py", "two", base_version=v1).json()["version"]
    assert v2 == v1 + 1
    r = _save(c, sid, "a.py", "stale edit", base_version=v1)
    assert r.status_code == 409
    assert r.json()["error"] == "version_conflict" and r.json()["current_version"] == v2
    assert c.get(f"/api/workspace/{sid}/file/a.py").json()["content"] == "two"
    # create-only
    r = _save(c, sid, "a.py", "again", base_version=0)
    assert r.status_code == 409 and r.json()["error"] == "already_exists"
    # unchanged content does not bump the version
    assert _save(c, sid, "a.py", "two", base_version=v2).json()["version"] == v2
    # an edit based on a file that was deleted meanwhile is a conflict, not a silent re-create
    c.delete(f"/api/workspace/{sid}/file/a.py")
    r = _save(c, sid, "a.py", "three", base_version=v2)
    assert r.status_code == 409 and r.json()["current_version"] is None


def test_concurrent_saves_from_the_same_version_one_wins_one_gets_409(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    v = _save(c, sid, "race.txt", "base").json()["version"]

    def save(i: int) -> int:
        with httpx.Client(base_url=api.server.base_url, cookies=c.cookies) as cc:
            return _save(cc, sid, "race.txt", f"writer {i}", base_version=v).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(save, range(8)))
    assert codes.count(200) == 1 and codes.count(409) == 7
    final = c.get(f"/api/workspace/{sid}/file/race.txt").json()
    assert final["version"] == v + 1 and final["content"].startswith("writer ")


def test_delete_file_and_folder_recursively(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    for p in [
        "keep.txt",
        "src/a.py",
        "src/sub/b.py",
        "src/sub/deeper/c.py",
        "srcx/d.py",
        "src0.txt",
    ]:
        assert _save(c, sid, p, p).status_code == 201
    assert c.delete(f"/api/workspace/{sid}/file/src/a.py").status_code == 204
    assert c.delete(f"/api/workspace/{sid}/file/src").status_code == 204
    assert sorted(_paths(c, sid)) == ["keep.txt", "src0.txt", "srcx", "srcx/d.py"]
    r = c.delete(f"/api/workspace/{sid}/file/src")
    assert r.status_code == 404 and r.json()["error"] == "file_not_found"


def test_folders_and_type_conflicts(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    r = c.post(f"/api/workspace/{sid}/folder/a/b/c")
    assert r.status_code == 201 and r.json()["type"] == "folder"
    assert c.post(f"/api/workspace/{sid}/folder/a/b").status_code == 200  # exists: idempotent
    assert _save(c, sid, "f.txt", "x").status_code == 201
    r = c.post(f"/api/workspace/{sid}/folder/f.txt/inner")
    assert r.status_code == 409 and r.json()["error"] == "not_a_folder"
    r = _save(c, sid, "f.txt/child.py", "x")
    assert r.status_code == 409 and r.json()["error"] == "not_a_folder"
    r = _save(c, sid, "a/b", "x")
    assert r.status_code == 409 and r.json()["error"] == "is_a_folder"
    r = c.get(f"/api/workspace/{sid}/file/a")
    assert r.status_code == 409 and r.json()["error"] == "is_a_folder"


def test_rename_and_move_files_and_folders_with_subtrees(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    for p in ["src/app.py", "src/lib/util.py", "src/lib/deep/x.py", "other.txt"]:
        _save(c, sid, p, f"content of {p}")
    r = c.post(f"/api/workspace/{sid}/move", json={"from": "other.txt", "to": "renamed.txt"})
    assert r.status_code == 200 and r.json()["path"] == "renamed.txt"
    r = c.post(f"/api/workspace/{sid}/move", json={"from": "src/lib", "to": "pkg/library"})
    assert r.status_code == 200 and r.json()["type"] == "folder"
    assert sorted(_paths(c, sid)) == sorted(
        [
            "src",
            "src/app.py",
            "pkg",
            "pkg/library",
            "pkg/library/util.py",
            "pkg/library/deep",
            "pkg/library/deep/x.py",
            "renamed.txt",
        ]
    )
    assert (
        c.get(f"/api/workspace/{sid}/file/pkg/library/deep/x.py").json()["content"]
        == "content of src/lib/deep/x.py"
    )
    # the moved subtree keeps working as a subtree (delete it whole)
    assert c.delete(f"/api/workspace/{sid}/file/pkg").status_code == 204
    assert sorted(_paths(c, sid)) == ["renamed.txt", "src", "src/app.py"]


def test_bad_moves_are_refused(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    _save(c, sid, "a/b/c.txt", "x")
    _save(c, sid, "taken.txt", "y")
    cases = [
        ({"from": "a", "to": "a/b/inside"}, 400, "move_into_self"),
        ({"from": "a", "to": "a"}, 200, None),
        ({"from": "a/b/c.txt", "to": "taken.txt"}, 409, "already_exists"),
        ({"from": "missing", "to": "x"}, 404, "file_not_found"),
        ({"from": "a", "to": "../escape"}, 400, "invalid_path"),
        ({"from": "a", "to": "taken.txt/sub"}, 409, "not_a_folder"),
    ]
    for body, status, code in cases:
        r = c.post(f"/api/workspace/{sid}/move", json=body)
        assert r.status_code == status, (body, r.text)
        if code:
            assert r.json()["error"] == code
    assert sorted(_paths(c, sid)) == ["a", "a/b", "a/b/c.txt", "taken.txt"]


@pytest.mark.parametrize(
    "path",
    # dot segments percent-encoded, or the HTTP client would resolve them before sending
    [
        "%2E%2E",
        "%2E%2E/etc/passwd",
        "a/%2E%2E/%2E%2E/b",
        "%2Fetc%2Fpasswd",
        "a/%00b",
        "a%0Ab",
        "x" * 300,
        "a/%2E/b",
        "a//b",
    ],
)
def test_bad_paths_get_400_invalid_path(api: UserClient, path: str) -> None:
    c, sid = api.client, api.new_session()
    r = c.post(f"/api/workspace/{sid}/file/{path}", json={"content": "x"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_path" and r.json()["message"]
    assert _paths(c, sid) == []


def test_unicode_names_work(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    for p in ["données/été.py", "日本語/ファイル.txt", "emoji 🎉/x y.md"]:
        assert _save(c, sid, p, p).status_code == 201
        assert c.get(f"/api/workspace/{sid}/file/{p}").json()["content"] == p


def test_invalid_payloads_are_400_or_422(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    r = c.post(
        f"/api/workspace/{sid}/file/x.bin", json={"content": "!!notbase64", "encoding": "base64"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_content"
    r = c.post(f"/api/workspace/{sid}/file/x.txt", json={"content": "x", "encoding": "latin1"})
    assert r.status_code == 422
    r = c.post(f"/api/workspace/{sid}/file/x.txt", json={"content": "x", "base_version": -1})
    assert r.status_code == 422
    r = c.post(f"/api/workspace/{sid}/file/x.txt", json={"text": "x"})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_status_and_ensure_default(api: UserClient) -> None:
    c, sid = api.client, api.new_session()
    st = c.get(f"/api/workspace/{sid}/status").json()
    assert st == {
        "initialized": False,
        "item_count": 0,
        "total_bytes": 0,
        "sandbox_status": "stopped",
        "disk_used_bytes": None,  # no running sandbox
        "disk_limit_bytes": None,
    }
    assert c.post(f"/api/workspace/{sid}/ensure-default").json() == {"created": True}
    assert c.post(f"/api/workspace/{sid}/ensure-default").json() == {"created": False}
    assert _paths(c, sid) == ["main.py"]
    st = c.get(f"/api/workspace/{sid}/status").json()
    assert st["initialized"] is True and st["item_count"] == 1 and st["total_bytes"] > 0


def test_limits_file_size_and_quota_leave_nothing_half_written(
    backend: str, tmp_path: Path
) -> None:
    server, stop = start_live_server(
        backend, tmp_path, max_file_bytes=1000, max_workspace_bytes=2500, max_workspace_items=6
    )
    try:
        u = register_user(server)
        c, sid = u.client, u.new_session()
        r = _save(c, sid, "deep/er/big.txt", "x" * 1001)
        assert (
            r.status_code == 413
            and r.json()["error"] == "file_too_large"
            and r.json()["limit_bytes"] == 1000
        )
        assert _paths(c, sid) == []  # no parent folders were left behind
        assert _save(c, sid, "a.txt", "x" * 1000).status_code == 201
        assert _save(c, sid, "b.txt", "x" * 1000).status_code == 201
        r = _save(c, sid, "c/d.txt", "x" * 600)
        assert r.status_code == 413 and r.json()["error"] == "quota_exceeded"
        assert sorted(_paths(c, sid)) == ["a.txt", "b.txt"]
        # growing an existing file past the quota is refused too, and the old content stays
        r = _save(c, sid, "a.txt", "y" * 1000 + "")
        assert r.status_code == 200
        assert _save(c, sid, "e.txt", "z" * 500).status_code == 201
        r = _save(c, sid, "e.txt", "z" * 900)
        assert r.status_code == 413
        assert c.get(f"/api/workspace/{sid}/file/e.txt").json()["content"] == "z" * 500
        # item count
        for p in ["f1", "f2", "f3"]:
            assert c.post(f"/api/workspace/{sid}/folder/{p}").status_code == 201
        r = c.post(f"/api/workspace/{sid}/folder/f4")
        assert r.status_code == 413 and r.json()["error"] == "quota_exceeded"
    finally:
        stop()


def test_deleting_a_session_deletes_its_items_and_a_user_their_sessions(
    live_server: LiveServer,
) -> None:
    u = register_user(live_server)
    s1, s2 = u.new_session("one"), u.new_session("two")
    for sid in (s1, s2):
        _save(u.client, sid, "dir/f.txt", "x")
    before = asyncio.run(_counts(live_server, u.user_id))
    assert before == (2, 4)
    assert u.client.delete(f"/api/sessions/{s1}").status_code == 204
    assert _paths(u.client, s2) == ["dir", "dir/f.txt"]
    assert asyncio.run(_counts(live_server, u.user_id)) == (1, 2)
    asyncio.run(_delete_user(live_server, u.user_id))
    assert asyncio.run(_counts(live_server, u.user_id)) == (0, 0)


async def _counts(server: LiveServer, user_id: int) -> tuple[int, int]:
    """(sessions, workspace items) of a user, read through a separate engine."""
    p = Platform(server.settings)
    try:
        async with p.db.session() as s:
            n_sessions = await s.scalar(
                select(func.count()).select_from(CodeSession).where(CodeSession.user_id == user_id)
            )
            n_items = await s.scalar(
                select(func.count())
                .select_from(WorkspaceItem)
                .join(CodeSession, CodeSession.id == WorkspaceItem.session_id)
                .where(CodeSession.user_id == user_id)
            )
            # orphans would not join: count items whose session no longer exists
            orphans = await s.scalar(
                select(func.count())
                .select_from(WorkspaceItem)
                .where(~WorkspaceItem.session_id.in_(select(CodeSession.id)))
            )
            assert orphans == 0
            return int(n_sessions or 0), int(n_items or 0)
    finally:
        await p.db.dispose()


async def _delete_user(server: LiveServer, user_id: int) -> None:
    p = Platform(server.settings)
    try:
        await p.accounts.delete_user(user_id)
    finally:
        await p.db.dispose()


def test_a_user_deletes_their_account_and_everything_in_it(live_server: LiveServer) -> None:
    u = register_user(live_server)
    other = register_user(live_server)
    sid = u.new_session("mine")
    _save(u.client, sid, "src/app.py", "print(1)\n")
    kept = other.new_session("theirs")
    _save(other.client, kept, "a.txt", "keep me")

    wrong = u.client.request("DELETE", "/api/users/me", json={"password": "not it"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "wrong_password"
    missing = u.client.request("DELETE", "/api/users/me", json={})
    assert missing.status_code == 422
    assert asyncio.run(_counts(live_server, u.user_id)) == (1, 2)

    r = u.client.request("DELETE", "/api/users/me", json={"password": u.password})
    assert r.status_code == 204
    assert asyncio.run(_counts(live_server, u.user_id)) == (0, 0)
    # The token no longer works (also through the Bearer header), and the login is gone.
    bearer = httpx.get(
        f"{live_server.base_url}/api/users/me", headers={"Authorization": f"Bearer {u.token}"}
    )
    assert bearer.status_code == 401
    login = httpx.post(
        f"{live_server.base_url}/api/users/login",
        json={"username": u.username, "password": u.password},
    )
    assert login.status_code == 401
    # Nobody else's data was touched.
    assert _paths(other.client, kept) == ["a.txt"]
