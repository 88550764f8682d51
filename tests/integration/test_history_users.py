"""Deleting a user releases their content references (history, snapshots, trash): no blob is
leaked, and none still referenced by another user is removed, while that other user saves and
snapshots the same contents concurrently. Both databases."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.errors import Conflict
from coolcoding.services import blobstore
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceService
from tests.conftest import LiveServer, module_live_server, register_user
from tests.integration.history_helpers import assert_everything_reads_back, ref_of_sid

server = module_live_server("history-users", history_coalesce_s=0.0, history_max_versions=5)

# Contents both users hold (the other user's references must survive), and one only A holds.
SHARED = [f"shared {i}\n".encode() * 40 for i in range(4)]
ONLY_A = b"only user A ever wrote this\n" * 10


def _ok(r: object) -> None:
    status = getattr(r, "status_code", 0)
    assert status in (200, 201, 204), getattr(r, "text", r)


def test_deleting_a_user_releases_content_and_keeps_shared(server: LiveServer) -> None:
    a, b = register_user(server), register_user(server)
    sa, sa2, sb = a.new_session(), a.new_session(), b.new_session()
    ca, cb = a.client, b.client
    for i, content in enumerate([*SHARED, ONLY_A]):
        _ok(ca.post(f"/api/workspace/{sa}/file/f{i % 2}.txt", json={"content": content.decode()}))
        _ok(ca.post(f"/api/workspace/{sa2}/file/g{i}.txt", json={"content": content.decode()}))
    for i in range(8):
        _ok(ca.post(f"/api/workspace/{sa}/snapshots", json={"name": f"s{i}"}))
    _ok(ca.delete(f"/api/workspace/{sa}/file/f0.txt"))  # to A's trash
    _ok(ca.delete(f"/api/sessions/{sa2}"))  # a whole workspace in A's trash
    _ok(cb.post(f"/api/workspace/{sb}/file/x.txt", json={"content": SHARED[0].decode()}))

    failures: list[str] = []

    def delete_a() -> None:
        r = ca.request("DELETE", "/api/users/me", json={"password": a.password})
        if r.status_code != 204:
            failures.append(r.text)

    async def b_writes() -> list[str]:
        db = Database(server.settings)
        ws = WorkspaceService(db, server.settings)
        ws.recorder = HistoryRecorder(server.settings)
        snaps = SnapshotService(db, server.settings, ws)
        ref = await ref_of_sid(db, sb)
        try:
            for i in range(30):
                try:
                    await ws.save_file(ref, "x.txt", SHARED[i % len(SHARED)], source="sandbox")
                    await ws.save_file(ref, f"y{i % 3}.txt", SHARED[-1 - i % len(SHARED)])
                except Conflict:
                    pass
                if i % 6 == 0:
                    snap = await snaps.create(ref, f"b{i}")
                    if i % 12 == 0:
                        await snaps.delete(ref, snap.id)
            async with db.session() as s:
                problems = await blobstore.verify(s)
                only_a = (
                    await s.execute(
                        text("SELECT COUNT(*) FROM content_blobs WHERE hash = :h"),
                        {"h": hashlib.sha256(ONLY_A).hexdigest()},
                    )
                ).scalar_one()
                leftovers = (
                    await s.execute(
                        text(
                            "SELECT COUNT(*) FROM snapshots n WHERE n.user_id = :u",
                        ),
                        {"u": a.user_id},
                    )
                ).scalar_one()
            return [*problems, *([f"A's content kept: {only_a}"] if only_a else [])] + (
                [f"{leftovers} snapshots of A left"] if leftovers else []
            )
        finally:
            await db.dispose()

    t = threading.Thread(target=delete_a)
    t.start()
    problems = asyncio.run(b_writes())
    t.join()
    assert failures == []
    assert problems == []
    # Everything B has still reads back: current files, every version, every snapshot file.
    assert_everything_reads_back(cb, sb)
