"""The background job of snapshots and the trash: purge what retention lets go (trash past
``trash_retention_days``, automatic snapshots past age or count) and take scheduled snapshots of
workspaces in use. Mixed into ``SnapshotService``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.db.models import Snapshot, utcnow
from coolcoding.services import blobstore
from coolcoding.services.blobstore import retrying, tsql
from coolcoding.services.snapshot_sql import capture, drop
from coolcoding.settings import Settings

log = logging.getLogger(__name__)


class SnapshotJobs:
    db: Database
    settings: Settings
    _task: asyncio.Task[None] | None
    _catch_up: asyncio.Task[None] | None
    _refreshes: dict[int, asyncio.Task[None]]

    async def purge_once(self) -> dict[str, int]:
        """Trash past retention, automatic snapshots past age or count: dropped."""
        now = utcnow()
        trash_before = now - timedelta(days=self.settings.trash_retention_days)
        auto_before = now - timedelta(days=self.settings.snapshot_max_age_days)
        done = {"trash": 0, "snapshots": 0, "blobs": 0}
        async with self.db.session() as s:
            expired = [
                int(r[0])
                for r in (
                    await s.execute(
                        tsql(
                            "SELECT id FROM snapshots WHERE kind = 'trash' AND created_at < :t", "t"
                        ),
                        {"t": trash_before},
                    )
                ).all()
            ]
            old = [
                int(r[0])
                for r in (
                    await s.execute(
                        tsql(
                            "SELECT id FROM snapshots WHERE kind IN ('auto', 'scheduled') AND created_at < :t",
                            "t",
                        ),
                        {"t": auto_before},
                    )
                ).all()
            ]
            ranked = (
                await s.execute(
                    text(
                        "SELECT id, session_id FROM snapshots WHERE kind IN ('auto', 'scheduled') ORDER BY session_id, id DESC"
                    )
                )
            ).all()
        seen: dict[Any, int] = {}
        for sid, sess in ranked:
            seen[sess] = seen.get(sess, 0) + 1
            if seen[sess] > self.settings.snapshot_max_auto:
                old.append(int(sid))
        for key, ids in (("trash", expired), ("snapshots", sorted(set(old)))):
            for snap_id in ids:
                async with self.db.session() as s, s.begin():
                    if await s.get(Snapshot, snap_id) is not None:
                        await drop(s, snap_id)
                        done[key] += 1

        async def sweep() -> int:
            async with self.db.session() as s, s.begin():
                return await blobstore.sweep(s)

        done["blobs"] = await retrying(sweep)
        return done

    async def scheduled_once(self) -> int:
        """A "scheduled" snapshot of each workspace changed since its last snapshot."""
        since = utcnow() - timedelta(seconds=self.settings.snapshot_interval_s)
        async with self.db.session() as s:
            due = (
                await s.execute(
                    tsql(
                        "SELECT x.id, x.user_id FROM sessions x WHERE x.last_accessed_at >= :since AND EXISTS ("
                        " SELECT 1 FROM workspace_items w WHERE w.session_id = x.id AND w.updated_at > COALESCE("
                        " (SELECT MAX(n.created_at) FROM snapshots n WHERE n.session_id = x.id AND n.kind <> 'trash'),"
                        " x.created_at))",
                        "since",
                    ),
                    {"since": since},
                )
            ).all()
        for sid, uid in due:
            await retrying(functools.partial(self._scheduled, int(sid), int(uid)))
        return len(due)

    async def _loop(self) -> None:
        last_sched = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(
                min(
                    self.settings.history_purge_interval_s,
                    self.settings.snapshot_interval_s or 1e9,
                    600,
                )
            )
            try:
                await self.purge_once()
                # Marks whose refresh did not run (its replica died after the restore's commit).
                await self.refresh_all_stale()
                if (
                    self.settings.snapshot_interval_s > 0
                    and loop.time() - last_sched >= self.settings.snapshot_interval_s
                ):
                    last_sched = loop.time()
                    await self.scheduled_once()
            except Exception:
                log.exception("history background job failed")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())
        self._catch_up = asyncio.create_task(self._refresh_left_stale())

    async def _refresh_left_stale(self) -> None:
        """Index entries a restore marked stale and a crash left unrefreshed."""
        try:
            await self.refresh_all_stale()
        except Exception:
            log.exception("search-index catch-up failed (search stays exact; retried at start)")

    async def refresh_all_stale(self) -> int:
        raise NotImplementedError

    async def stop(self) -> None:
        # Refreshes in flight stop here; their marks stay for the next start.
        for task in [self._catch_up, *self._refreshes.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _scheduled(self, session_id: int, user_id: int) -> Snapshot:
        async with self.db.session() as s, s.begin():
            return await capture(
                s,
                session_id=session_id,
                user_id=user_id,
                kind="scheduled",
                name=f"Scheduled {utcnow():%Y-%m-%d %H:%M}",
            )
