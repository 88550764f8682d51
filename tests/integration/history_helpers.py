"""Helpers shared by the history tests: a workspace's ref from its id, the blob store's
consistency check, and the check that every version and snapshot file of a workspace reads back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession
from coolcoding.services import blobstore
from coolcoding.services.sessions import parse_uuid
from coolcoding.services.workspace import WorkspaceRef
from tests.conftest import LiveServer


async def ref_of_sid(db: Database, sid: str) -> WorkspaceRef:
    async with db.session() as s:
        row = await s.scalar(select(CodeSession.id).where(CodeSession.uuid == parse_uuid(sid)))
    assert row is not None
    return WorkspaceRef(int(row), sid)


def store_problems(server: LiveServer) -> list[str]:
    """What blobstore.verify finds wrong in ``server``'s database (nothing when consistent)."""

    async def check() -> list[str]:
        db = Database(server.settings)
        try:
            async with db.session() as s:
                return await blobstore.verify(s)
        finally:
            await db.dispose()

    return asyncio.run(check())


def assert_everything_reads_back(c: httpx.Client, sid: str) -> list[dict[str, Any]]:
    """Every written version and every snapshot file of ``sid`` reads back; returns the versions."""
    versions: list[dict[str, Any]] = c.get(
        f"/api/workspace/{sid}/history", params={"limit": 500}
    ).json()["versions"]
    for v in versions:
        if v["kind"] == "write":
            r = c.get(f"/api/workspace/{sid}/history/{v['id']}")
            assert r.status_code == 200, r.text
    for snap in c.get(f"/api/workspace/{sid}/snapshots").json()["snapshots"]:
        for f in c.get(f"/api/workspace/{sid}/snapshots/{snap['id']}/files").json()["items"]:
            if f["type"] == "file":
                r = c.get(f"/api/workspace/{sid}/snapshots/{snap['id']}/file/{f['path']}")
                assert r.status_code == 200, r.text
    return versions
