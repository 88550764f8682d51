"""Finding 3: terminal appends raced with editor saves must never vanish.

The terminal appends ``T<i>`` lines to ``race.txt`` while an API client appends ``E<j>`` lines with
``base_version`` (retrying on 409). Afterwards every line is in the final file (the DB and the disk
agree) or in a conflict copy announced by a ``conflict`` event: nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from coolcoding.platform import Platform
from coolcoding.services.workspace import WorkspaceRef
from tests.conftest import (
    LiveServer,
    UserClient,
    make_database,
    make_settings,
    module_live_server,
    searchable,
)
from tests.sandbox_helpers import Term, events_socket

pytestmark = pytest.mark.sandbox


server = module_live_server("lost")


async def _collect(ws: Any, into: list[dict[str, Any]]) -> None:
    with contextlib.suppress(Exception):
        while True:
            into.append(json.loads(await ws.recv()))


async def _editor_appends(
    client: httpx.AsyncClient, sid: str, done: asyncio.Event, pause_s: float
) -> int:
    """Append E1, E2, ... until ``done``; each append re-reads and retries on a 409."""
    url = f"/api/workspace/{sid}/file/race.txt"
    j = 0
    while not done.is_set():
        j += 1
        while True:
            cur = (await client.get(url)).json()
            body = {"content": cur["content"] + f"E{j}\n", "base_version": cur["version"]}
            r = await client.post(url, json=body)
            if r.status_code != 409:
                assert r.status_code in (200, 201), r.text
                break
        await asyncio.sleep(pause_s)
    return j


def _lines(text: str) -> set[str]:
    return set(text.splitlines())


@pytest.mark.parametrize(("every_ms", "count"), [(5, 150), (20, 120), (100, 30)])
async def test_terminal_appends_racing_editor_saves_are_never_lost(
    server: LiveServer, user: UserClient, every_ms: int, count: int
) -> None:
    sid = user.new_session()
    r = user.client.post(f"/api/workspace/{sid}/file/race.txt", json={"content": "start\n"})
    assert r.status_code == 201, r.text
    events: list[dict[str, Any]] = []
    ev = await events_socket(server, user, sid)
    collector = asyncio.create_task(_collect(ev, events))
    t = await Term.open(server, user, sid)
    headers = {"Cookie": f"cc_session={user.token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as client:
        done = asyncio.Event()
        editor = asyncio.create_task(_editor_appends(client, sid, done, every_ms / 2000))
        sleep = f"{every_ms / 1000:.3f}"
        msg, out = await t.run(
            f"for i in $(seq 1 {count}); do echo T$i >> race.txt; sleep {sleep}; done"
        )
        done.set()
        edits = await editor
        assert msg["exit_code"] == 0, out
        # Let sync settle: a command end flushes the watcher; then DB and disk must agree.
        await t.run("true")
        await asyncio.sleep(0.5)
        await t.run("true")
        final = (await client.get(f"/api/workspace/{sid}/file/race.txt")).json()["content"]
        root = server.platform.runtime.workspace_dir(sid)
        assert root is not None
        disk = (Path(root) / "race.txt").read_text()
        assert final == disk
        conflicts = [e for e in events if e.get("type") == "conflict"]
        kept = _lines(final)
        for e in conflicts:
            got = await client.get(f"/api/workspace/{sid}/file/{e['conflict_path']}")
            if got.status_code == 200:
                kept |= _lines(got.json()["content"])
    await t.close()
    collector.cancel()
    with contextlib.suppress(BaseException):
        await collector
    await ev.close()
    lost_t = [f"T{i}" for i in range(1, count + 1) if f"T{i}" not in kept]
    lost_e = [f"E{j}" for j in range(1, edits + 1) if f"E{j}" not in kept]
    assert not lost_t and not lost_e, (
        f"lost {len(lost_t)} terminal lines {lost_t[:10]} and {len(lost_e)} editor lines "
        f"{lost_e[:10]}; {len(conflicts)} conflict copies"
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def slow_sync(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    """An in-process platform whose watcher waits long: the unsynced state is set up at will."""
    data = searchable(tmp_path)
    db = await asyncio.to_thread(make_database, request.param, data)
    p = Platform(make_settings(data, db.url, sync_debounce_ms=5000))
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
        await asyncio.to_thread(db.drop)


async def test_editor_delete_and_move_never_bury_unsynced_sandbox_writes(
    slow_sync: Platform,
) -> None:
    p = slow_sync
    user = await p.accounts.register("mover", "mover@example.com", "correct horse battery")
    sess = await p.sessions.create(user.id, "race", "python", False)
    ref = WorkspaceRef(sess.id, str(sess.uuid))
    await p.workspace.save_file(ref, "gone.txt", b"base\n")
    await p.workspace.save_file(ref, "src.txt", b"moved\n")
    await p.sandboxes.ensure_started(sess)
    root = Path(p.runtime.workspace_dir(ref.session_uuid))
    async with p.events.subscribe(ref.session_uuid) as q:
        # Program output the watcher has not synced yet (long debounce)...
        (root / "gone.txt").write_bytes(b"base\nprogram line\n")
        (root / "dst.txt").write_bytes(b"made by a program\n")
        # ...meets an editor delete and an editor move onto that name.
        await p.workspace.delete(ref, "gone.txt")
        await p.workspace.move(ref, "src.txt", "dst.txt")
        events = []
        while not q.empty():
            events.append(q.get_nowait())
    copies = {e["path"]: str(e["conflict_path"]) for e in events if e["type"] == "conflict"}
    assert set(copies) == {"gone.txt", "dst.txt"}, events
    assert (await p.workspace.read(ref, copies["gone.txt"]))[1] == b"base\nprogram line\n"
    assert (await p.workspace.read(ref, copies["dst.txt"]))[1] == b"made by a program\n"
    assert (root / copies["dst.txt"]).read_bytes() == b"made by a program\n"
    assert (root / "dst.txt").read_bytes() == b"moved\n"
    assert not (root / "gone.txt").exists()
