"""No referenced content ever disappears: saves through the API (editor) and writes from a
second writer with source "sandbox" (what the terminal sync does) race with version purges
(retention 3, so nearly every save purges) and snapshot creation/deletion; afterwards every
version and snapshot file reads back and the reference counts equal a full recount. Both
databases."""

from __future__ import annotations

import asyncio
import threading

from coolcoding.db.engine import Database
from coolcoding.errors import Conflict
from coolcoding.services import blobstore
from coolcoding.services.history import HistoryRecorder
from coolcoding.services.snapshots import SnapshotService
from coolcoding.services.workspace import WorkspaceService
from tests.conftest import LiveServer, UserClient, module_live_server
from tests.integration.history_helpers import assert_everything_reads_back, ref_of_sid

server = module_live_server("history-race", history_coalesce_s=0.0, history_max_versions=3)

ROUNDS = 40
# Few distinct contents, so writers keep re-referencing blobs that purges are releasing.
CONTENTS = [f"shared content {i % 5}\n".encode() * 20 for i in range(ROUNDS)]


def test_no_referenced_content_disappears(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    for p in ("a.txt", "b.txt"):
        assert (
            c.post(f"/api/workspace/{sid}/file/{p}", json={"content": "start\n"}).status_code == 201
        )

    failures: list[str] = []

    def editor() -> None:
        for i in range(ROUNDS):
            r = c.post(f"/api/workspace/{sid}/file/a.txt", json={"content": CONTENTS[i].decode()})
            # 409: the other writer changed the row between this save's read and its update.
            if r.status_code not in (200, 201, 409):
                failures.append(r.text)

    async def sandbox_and_purges() -> list[str]:
        db = Database(server.settings)
        ws = WorkspaceService(db, server.settings)
        ws.recorder = HistoryRecorder(server.settings)
        snaps = SnapshotService(db, server.settings, ws)
        ref = await ref_of_sid(db, sid)
        try:
            for i in range(ROUNDS):
                for path in ("a.txt", "b.txt"):
                    try:
                        await ws.save_file(ref, path, CONTENTS[-1 - i], source="sandbox")
                    except Conflict:
                        pass  # a concurrent create/update of the same row: retried next round
                if i % 5 == 0:
                    snap = await snaps.create(ref, f"race {i}")
                    if i % 10 == 0:
                        await snaps.delete(ref, snap.id)
            async with db.session() as s:
                return await blobstore.verify(s)
        finally:
            await db.dispose()

    t = threading.Thread(target=editor)
    t.start()
    problems = asyncio.run(sandbox_and_purges())
    t.join()
    assert failures == []
    assert problems == []
    assert assert_everything_reads_back(c, sid)


def test_bulk_arrival_records_first_versions(user: UserClient, server: LiveServer) -> None:
    """Files arriving in bulk from the sandbox (``create_files``) each get a first version
    ("terminal"); identical contents share one blob with one reference per file."""
    c, sid = user.client, user.new_session()

    async def arrive() -> list[str]:
        db = Database(server.settings)
        ws = WorkspaceService(db, server.settings)
        ws.recorder = HistoryRecorder(server.settings)
        try:
            ref = await ref_of_sid(db, sid)
            files = [
                (f"gen/f{i}.txt", b"same\n" if i % 2 else f"n{i}\n".encode()) for i in range(50)
            ]
            await ws.create_files(ref, files, source="sandbox")
            async with db.session() as s:
                return await blobstore.verify(s)
        finally:
            await db.dispose()

    assert asyncio.run(arrive()) == []
    versions = c.get(f"/api/workspace/{sid}/history", params={"limit": 500}).json()["versions"]
    gen = [v for v in versions if v["path"].startswith("gen/")]
    assert len(gen) == 50 and {v["source"] for v in gen} == {"terminal"}
    v = next(v for v in gen if v["path"] == "gen/f3.txt")
    assert c.get(f"/api/workspace/{sid}/history/{v['id']}").json()["content"] == "same\n"


def test_background_job_purges_and_schedules(user: UserClient, server: LiveServer) -> None:
    c, sid = user.client, user.new_session()
    assert c.post(f"/api/workspace/{sid}/file/t.txt", json={"content": "x\n"}).status_code == 201
    assert c.delete(f"/api/workspace/{sid}/file/t.txt").status_code == 204
    assert c.post(f"/api/workspace/{sid}/file/u.txt", json={"content": "y\n"}).status_code == 201
    assert len(c.get(f"/api/workspace/{sid}/trash").json()["snapshots"]) == 1
    settings = server.settings.model_copy(
        update={"trash_retention_days": 0.0, "snapshot_interval_s": 3600.0}
    )

    async def run() -> tuple[dict[str, int], int, list[str]]:
        db = Database(settings)
        ws = WorkspaceService(db, settings)
        snaps = SnapshotService(db, settings, ws)
        try:
            purged = await snaps.purge_once()
            scheduled = await snaps.scheduled_once()
            again = await snaps.scheduled_once()  # nothing changed since: no second one
            assert again == 0
            async with db.session() as s:
                return purged, scheduled, await blobstore.verify(s)
        finally:
            await db.dispose()

    purged, scheduled, problems = asyncio.run(run())
    assert purged["trash"] >= 1 and scheduled >= 1 and problems == []
    assert c.get(f"/api/workspace/{sid}/trash").json()["snapshots"] == []
    kinds = [s["kind"] for s in c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]]
    assert "scheduled" in kinds
