"""Two-way sync between the DB and a running sandbox: real bubblewrap, inotify, DB, WebSockets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from pathlib import Path

import pytest

from coolcoding.platform import Platform
from coolcoding.services.workspace import WorkspaceRef
from tests.conftest import (
    LiveServer,
    UserClient,
    make_settings,
    module_live_server,
    searchable,
)
from tests.sandbox_helpers import (
    Term,
    events_socket,
    file_items,
    next_event,
    wait_until,
)

pytestmark = pytest.mark.sandbox


server = module_live_server("sync")


def raw(u: UserClient, sid: str, path: str) -> bytes:
    r = u.client.get(f"/api/workspace/{sid}/file/{path}", params={"raw": 1})
    assert r.status_code == 200, r.text
    return r.content


async def test_program_changes_reach_the_db_at_command_end(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    await t.run("echo hi > a.txt && mkdir -p x/y && echo deep > x/y/z.txt")
    items = file_items(user, sid)  # no waiting: the command's end synced them
    assert {"a.txt", "x", "x/y", "x/y/z.txt"} <= set(items)
    assert raw(user, sid, "a.txt") == b"hi\n"
    await t.run("mv a.txt b.txt && rm -r x")
    items = file_items(user, sid)
    assert "a.txt" not in items and "x" not in items and "x/y/z.txt" not in items
    assert raw(user, sid, "b.txt") == b"hi\n"
    assert items["b.txt"]["version"] == 2  # a rename is a move in the DB, not delete + create
    await t.close()


async def test_background_writes_reach_the_db_within_a_second(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    await t.run("(sleep 0.3; echo late > late.txt) &")
    t0 = time.monotonic()
    wait_until(lambda: "late.txt" in file_items(user, sid), timeout=3)
    assert time.monotonic() - t0 < 1.3
    await t.close()


async def test_generated_files_and_git_init(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    gen = "python3 -c \"[open(f'gen/f{i}.txt', 'w').write(str(i)) for i in range(300)]\""
    msg, out = await t.run("mkdir gen && " + gen)
    assert msg["exit_code"] == 0, out
    msg, out = await t.run("git init -q repo && ls repo/.git | wc -l")
    assert msg["exit_code"] == 0, out
    items = file_items(user, sid)
    assert sum(p.startswith("gen/f") for p in items) == 300
    assert raw(user, sid, "gen/f123.txt") == b"123"
    assert "repo/.git/HEAD" in items and "repo/.git/config" in items
    await t.close()


async def test_binary_files_round_trip(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    blob = bytes(range(256)) * 40
    r = user.client.post(
        f"/api/workspace/{sid}/file/in.bin",
        json={"content": base64.b64encode(blob).decode(), "encoding": "base64"},
    )
    assert r.status_code == 201, r.text
    t = await Term.open(server, user, sid)
    _, out = await t.run("sha256sum in.bin; head -c 5000 /dev/urandom > out.bin")
    assert hashlib.sha256(blob).hexdigest().encode() in out
    _, out = await t.run("sha256sum out.bin")
    assert hashlib.sha256(raw(user, sid, "out.bin")).hexdigest().encode() in out
    assert file_items(user, sid)["out.bin"]["is_binary"] is True
    await t.close()


async def test_editor_saves_reach_the_running_sandbox_at_once(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    r = user.client.post(f"/api/workspace/{sid}/file/src/app.py", json={"content": "print(1)\n"})
    assert r.status_code == 201
    _, out = await t.run("cat src/app.py")
    assert b"print(1)" in out
    user.client.post(f"/api/workspace/{sid}/move", json={"from": "src", "to": "lib"})
    user.client.post(f"/api/workspace/{sid}/folder/empty/dir")
    _, out = await t.run("ls -d lib/app.py empty/dir src 2>&1")
    assert b"lib/app.py" in out and b"empty/dir" in out and b"No such file" in out
    user.client.delete(f"/api/workspace/{sid}/file/lib")
    _, out = await t.run("ls lib 2>&1")
    assert b"No such file" in out
    # Nothing echoed back: the sandbox's copy of an editor save is not a new version.
    await asyncio.sleep(0.3)
    assert set(file_items(user, sid)) == {"empty", "empty/dir"}
    await t.close()


async def test_symlinks_and_too_large_files_are_reported_not_stored(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    ev = await events_socket(server, user, sid)
    t = await Term.open(server, user, sid)
    limit = server.settings.max_file_bytes
    await t.run(f"ln -s /etc/passwd link && head -c {limit + 1} /dev/zero > big.bin && mkfifo pipe")
    got = {}
    for _ in range(3):
        e = await next_event(ev, lambda e: e["type"] == "sync_error")
        got[e["path"]] = e["error"]
    assert got == {"link": "not_synced", "big.bin": "file_too_large", "pipe": "not_synced"}
    items = file_items(user, sid)
    assert "link" not in items and "big.bin" not in items and "pipe" not in items
    # A symlinked folder is never followed out of the workspace.
    await t.run("ln -s / root && mkdir real && ln -s /etc real/etc")
    assert not any(p.startswith(("root/", "real/etc")) for p in file_items(user, sid))
    await t.close()
    await ev.close()


async def test_stale_editor_save_is_rejected_with_409(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    r = user.client.post(f"/api/workspace/{sid}/file/c.txt", json={"content": "v1"})
    base = r.json()["version"]
    t = await Term.open(server, user, sid)
    await t.run("echo from-sandbox > c.txt")
    r = user.client.post(
        f"/api/workspace/{sid}/file/c.txt", json={"content": "editor", "base_version": base}
    )
    assert r.status_code == 409 and r.json()["error"] == "version_conflict"
    assert raw(user, sid, "c.txt") == b"from-sandbox\n"
    await t.close()


@pytest.fixture
async def platform(tmp_path: Path) -> Platform:
    """An in-process platform whose watcher waits long: races are set up deterministically."""
    settings = make_settings(
        searchable(tmp_path), f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", sync_debounce_ms=3000
    )
    p = Platform(settings)
    await p.start()
    yield p  # type: ignore[misc]
    await p.stop()


async def test_editor_save_over_an_unsynced_sandbox_write_keeps_both(platform: Platform) -> None:
    user = await platform.accounts.register("racer", "racer@example.com", "correct horse battery")
    sess = await platform.sessions.create(user.id, "race", "python", False)
    ref = WorkspaceRef(sess.id, str(sess.uuid))
    await platform.workspace.save_file(ref, "notes.md", b"base\n")
    sandboxes = platform.sandboxes
    await sandboxes.ensure_started(sess)
    root = Path(platform.runtime.workspace_dir(ref.session_uuid))
    events: list[dict[str, object]] = []
    async with platform.events.subscribe(ref.session_uuid) as q:
        (root / "notes.md").write_bytes(b"program output\n")  # not synced yet (long debounce)
        await platform.workspace.save_file(ref, "notes.md", b"editor text\n")
        while not q.empty():
            events.append(q.get_nowait())
    conflict = next(e for e in events if e["type"] == "conflict")
    cpath = str(conflict["conflict_path"])
    assert cpath.startswith("notes.conflict-") and cpath.endswith(".md")
    assert (await platform.workspace.read(ref, "notes.md"))[1] == b"editor text\n"
    assert (await platform.workspace.read(ref, cpath))[1] == b"program output\n"
    assert (root / "notes.md").read_bytes() == b"editor text\n"
    assert (root / cpath).read_bytes() == b"program output\n"
    await sandboxes.stop(ref.session_uuid)
