"""Sandbox lifecycle: lazy start, status in DB and events, stop/start, idle stop, restart recovery."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import register_user, searchable, start_live_server
from tests.sandbox_helpers import (
    Term,
    events_socket,
    file_items,
    next_event,
    wait_until,
)

pytestmark = pytest.mark.sandbox


def sleepers() -> list[str]:
    found = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if p.read_bytes() == b"sleep\x00" + b"1000" + b"\x00":
                found.append(p.parent.name)
        except OSError:
            continue
    return found


def status(u, sid: str) -> str:  # type: ignore[no-untyped-def]
    return str(u.client.get(f"/api/sessions/{sid}").json()["sandbox_status"])


async def test_lazy_start_status_events_stop_and_idle_timeout(tmp_path: Path) -> None:
    server, stop = start_live_server(
        "sqlite", searchable(tmp_path), sandbox_idle_timeout_s=1, terminal_reattach_grace_s=1
    )
    try:
        u = register_user(server)
        sid = u.new_session()
        assert status(u, sid) == "stopped"  # creating a session starts nothing
        ev = await events_socket(server, u, sid)
        seen = [(await next_event(ev, lambda e: e["type"] == "sandbox_status"))["status"]]
        while seen[-1] != "running":
            seen.append((await next_event(ev, lambda e: e["type"] == "sandbox_status"))["status"])
        assert seen[-1] == "running" and status(u, sid) == "running"
        t = await Term.open(server, u, sid)
        await t.run("echo kept > kept.txt")
        r = u.client.post(f"/api/sessions/{sid}/sandbox/stop")
        assert r.json() == {"status": "stopped"}
        await t.recv_until(lambda m: m is not None and m["type"] == "exit")
        assert (await next_event(ev, lambda e: e["type"] == "sandbox_status"))[
            "status"
        ] == "stopped"
        assert "kept.txt" in file_items(u, sid) and status(u, sid) == "stopped"
        assert u.client.post(f"/api/sessions/{sid}/sandbox/start").json() == {"status": "running"}
        await ev.close()
        t = await Term.open(server, u, sid, tid="t2")
        _, out = await t.run("cat kept.txt")
        assert b"kept" in out
        await t.close()
        # Nothing attached and no command: stopped after the idle timeout.
        wait_until(lambda: status(u, sid) == "stopped", timeout=6, step=0.2)
        assert not server.platform.sandboxes.is_running(sid)
    finally:
        stop()


async def test_delete_session_stops_sandbox_and_removes_its_files(tmp_path: Path) -> None:
    server, stop = start_live_server("sqlite", searchable(tmp_path))
    try:
        u = register_user(server)
        sid = u.new_session()
        t = await Term.open(server, u, sid)
        await t.run("echo x > x.txt")
        root = Path(server.platform.runtime.workspace_dir(sid))
        assert (root / "x.txt").exists()
        assert u.client.delete(f"/api/sessions/{sid}").status_code == 204
        await t.recv_until(lambda m: m is not None and m["type"] == "exit")
        assert not root.exists()
    finally:
        stop()


async def test_restart_finds_no_orphans_and_loses_no_files(tmp_path: Path) -> None:
    """Three sessions' sandboxes, crashed: each one's unsynced write is recovered at the next
    start (``sandbox_recovery_concurrency`` of them at once), no process or image outlives."""
    data = searchable(tmp_path)
    server, stop = start_live_server("sqlite", data)
    u = register_user(server)
    sids = [u.new_session() for _ in range(3)]
    try:
        for sid in sids:
            t = await Term.open(server, u, sid)
            await t.run(f"echo before {sid} > before.txt; sleep 1000 &")
    finally:
        stop()  # graceful: final sync, sandboxes stopped
    runtime = server.platform.runtime
    roots = {sid: Path(runtime.workspace_dir(sid)) for sid in sids}
    # Simulate a crash of the next server: status left 'running', a write not yet synced, and
    # (with the disk quota's images) the workspace image left mounted.
    db = sqlite3.connect(data / "test.db")
    db.execute("UPDATE sessions SET sandbox_status='running'")
    db.commit()
    db.close()
    for sid, root in roots.items():
        if runtime.images is not None:
            image = str(runtime.images.image_path(sid))
            subprocess.run(["mount", "-o", "loop,nosuid,nodev", image, str(root)], check=True)
        (root / "unsynced.txt").write_text(f"after crash {sid}\n")
    assert not sleepers(), "a sandbox process outlived its server"
    server2, stop2 = start_live_server("sqlite", data)
    try:
        u.client.base_url = server2.base_url  # type: ignore[misc]
        for sid in sids:
            assert status(u, sid) == "stopped"
            items = file_items(u, sid)
            assert "before.txt" in items and "unsynced.txt" in items
        t = await Term.open(server2, u, sids[1])
        _, out = await t.run("cat before.txt unsynced.txt")
        assert f"before {sids[1]}".encode() in out and f"after crash {sids[1]}".encode() in out
        await t.close()
    finally:
        stop2()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert not [r for r in roots.values() if str(r) in mounts], "an image outlived its server"


async def test_an_agent_that_dies_reports_the_sandbox_as_error_with_the_reason(
    tmp_path: Path,
) -> None:
    server, stop = start_live_server("sqlite", searchable(tmp_path))
    try:
        u = register_user(server)
        sid = u.new_session()
        ev = await events_socket(server, u, sid)
        t = await Term.open(server, u, sid)
        await t.run("true")
        sandbox = server.platform.sandboxes.get(sid)
        assert sandbox is not None and sandbox.agent is not None and sandbox.agent.pid
        os.kill(sandbox.agent.pid, signal.SIGKILL)  # the user's own programs could do this
        event = await next_event(
            ev, lambda e: e["type"] == "sandbox_status" and e["status"] == "error"
        )
        assert "agent stopped" in event["message"]
        await t.recv_until(lambda m: m is not None and m["type"] == "exit")
        assert status(u, sid) == "error"
        t = await Term.open(server, u, sid, tid="t2")  # a new terminal starts a new sandbox
        _, out = await t.run("echo back-$((6*7))")
        assert b"back-42" in out
        await t.close()
        await ev.close()
    finally:
        stop()
