"""Snapshots (manual, automatic, scheduled), the trash, forks, stored-bytes accounting and the
background job that purges what retention lets go.

A trash entry is a snapshot of kind ``trash`` of the deleted subtree (``root_path``) or of the
whole deleted workspace (``root_type`` "workspace", ``session_id`` NULL once it is gone).
Restores run in one transaction: the current state is snapshotted first, then the tree is
replaced; a crash anywhere leaves the workspace as it was.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, Snapshot
from coolcoding.errors import Conflict, Forbidden, NotFound, TooLarge
from coolcoding.filesync.paths import ancestors
from coolcoding.services import blobstore
from coolcoding.services.blobstore import retried
from coolcoding.services.search_index import STALE_SESSIONS, refresh_stale
from coolcoding.services.snapshot_jobs import SnapshotJobs
from coolcoding.services.snapshot_sql import (
    capture,
    copy_items,
    drop,
    fill_packed,
    keep_unchanged,
    materialize,
    record_restore,
)
from coolcoding.services.workspace import Change, WorkspaceRef, WorkspaceService
from coolcoding.settings import Settings

log = logging.getLogger(__name__)
# A restore's tree after, and the paths it removed (in the safety snapshot of the state before,
# not in the workspace now), for its change events: no timestamps, no ItemInfo objects.
_GONE_STMT = text(
    "SELECT o.path, o.type FROM snapshot_files o WHERE o.snapshot_id = :before"
    " AND NOT EXISTS (SELECT 1 FROM workspace_items w WHERE w.session_id = :sid"
    " AND w.full_path = o.path)"
)
_COUNT_STMT = text("SELECT COUNT(*) FROM workspace_items WHERE session_id = :sid")
_TREE_NOW_STMT = text(
    "SELECT full_path, type, version, size_bytes FROM workspace_items WHERE session_id = :sid"
    " ORDER BY full_path"
)

# May ``user_id`` fork this session? Grants are added by later features (sharing, public links).
ForkGrant = Callable[[int, CodeSession], Awaitable[bool]]


def snapshot_json(s: Snapshot) -> dict[str, Any]:
    from coolcoding.services.workspace_types import _iso

    return {
        "id": s.id,
        "kind": s.kind,
        "name": s.name,
        "root_path": s.root_path,
        "root_type": s.root_type,
        "file_count": s.file_count,
        "total_bytes": s.total_bytes,
        "created_at": _iso(s.created_at),
        "meta": s.meta or {},
    }


class SnapshotService(SnapshotJobs):
    def __init__(self, db: Database, settings: Settings, workspace: WorkspaceService) -> None:
        self.db = db
        self.settings = settings
        self.workspace = workspace
        self.fork_grants: list[ForkGrant] = []
        self._task: asyncio.Task[None] | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self._refreshes: dict[int, asyncio.Task[None]] = {}
        self._refresh_again: set[int] = set()

    # --- snapshots ---------------------------------------------------------------------------

    async def _user_of(self, s: AsyncSession, ref: WorkspaceRef) -> int:
        uid = await s.scalar(select(CodeSession.user_id).where(CodeSession.id == ref.session_id))
        if uid is None:
            raise NotFound("no such session", code="session_not_found")
        return int(uid)

    @retried
    async def create(self, ref: WorkspaceRef, name: str, kind: str = "manual") -> Snapshot:
        async with self.db.session() as s, s.begin():
            return await capture(
                s,
                session_id=ref.session_id,
                user_id=await self._user_of(s, ref),
                kind=kind,
                name=name,
            )

    async def list_snapshots(self, ref: WorkspaceRef, *, trash: bool = False) -> list[Snapshot]:
        kind = Snapshot.kind == "trash" if trash else Snapshot.kind != "trash"
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Snapshot)
                .where(Snapshot.session_id == ref.session_id, kind)
                .order_by(Snapshot.id.desc())
            )
            return list(rows.all())

    async def get(self, ref: WorkspaceRef, snapshot_id: int, *, trash: bool = False) -> Snapshot:
        async with self.db.session() as s:
            snap = await s.get(Snapshot, snapshot_id)
        if snap is None or snap.session_id != ref.session_id or (snap.kind == "trash") != trash:
            raise NotFound(
                f"no {'trash entry' if trash else 'snapshot'} {snapshot_id}",
                code="snapshot_not_found",
            )
        return snap

    async def files(
        self, ref: WorkspaceRef, snapshot_id: int, *, trash: bool = False
    ) -> list[dict[str, Any]]:
        await self.get(ref, snapshot_id, trash=trash)
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT path, name, type, size, blob_hash, is_binary FROM snapshot_files"
                        " WHERE snapshot_id = :id ORDER BY path"
                    ),
                    {"id": snapshot_id},
                )
            ).all()
        keys = ("path", "name", "type", "size", "content_hash", "is_binary")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def read(
        self, ref: WorkspaceRef, snapshot_id: int, path: str
    ) -> tuple[dict[str, Any], bytes]:
        await self.get(ref, snapshot_id)
        path = self.workspace.normalize(path)
        async with self.db.session() as s:
            row = (
                await s.execute(
                    text(
                        "SELECT path, type, size, blob_hash, is_binary FROM snapshot_files"
                        " WHERE snapshot_id = :id AND path = :path"
                    ),
                    {"id": snapshot_id, "path": path},
                )
            ).first()
            if row is None:
                raise NotFound(
                    f"no {path!r} in snapshot {snapshot_id}", code="file_not_found", path=path
                )
            if row[1] == "folder":
                raise Conflict(f"{path!r} is a folder", code="is_a_folder", path=path)
            content = await blobstore.read(s, row[3])
        return {
            "path": row[0],
            "size": row[2],
            "content_hash": row[3],
            "is_binary": row[4],
        }, content

    @retried
    async def delete(self, ref: WorkspaceRef, snapshot_id: int, *, trash: bool = False) -> None:
        await self.get(ref, snapshot_id, trash=trash)
        async with self.db.session() as s, s.begin():
            await drop(s, snapshot_id)

    @retried
    async def restore(
        self, ref: WorkspaceRef, snapshot_id: int, *, author_id: int | None = None
    ) -> dict[str, Any]:
        """Replace the workspace by a snapshot, the current state snapshotted first: atomic."""
        snap = await self.get(ref, snapshot_id)
        async with self.db.session() as s, s.begin():
            if self.db.engine.dialect.name == "postgresql":
                # Writers of this workspace wait (their rows are locked) until the restore is done.
                await s.execute(
                    text("SELECT id FROM sessions WHERE id = :sid FOR UPDATE"),
                    {"sid": ref.session_id},
                )
            safety = await capture(
                s,
                session_id=ref.session_id,
                user_id=snap.user_id,
                kind="auto",
                name=f"Before restoring {snap.name!r}",
            )
            version = int(
                (
                    await s.execute(
                        text(
                            "SELECT COALESCE(MAX(version), 0) + 1 FROM workspace_items"
                            " WHERE session_id = :sid"
                        ),
                        {"sid": ref.session_id},
                    )
                ).scalar_one()
            )
            # Only what differs is rewritten; what is already as in the snapshot stays (with
            # its version: a save based on it is still right).
            deleted, rewritten, index_deferred = await keep_unchanged(
                s,
                session_id=ref.session_id,
                snapshot_id=snapshot_id,
                version=version,
                defer_index_min=self.settings.search_defer_refresh_min_files,
            )
            count = int(
                (
                    await s.execute(
                        text("SELECT COUNT(*) FROM snapshot_files WHERE snapshot_id = :snap"),
                        {"snap": snapshot_id},
                    )
                ).scalar_one()
            )
            # Every item left is one the snapshot holds (path and type): as many as it holds
            # means none is missing, and there is nothing to insert.
            kept = int((await s.execute(_COUNT_STMT, {"sid": ref.session_id})).scalar_one())
            inserted = 0
            if kept < count:
                inserted = await materialize(
                    s,
                    session_id=ref.session_id,
                    snapshot_id=snapshot_id,
                    version=version,
                    only_missing=True,
                )
            elif rewritten:
                await fill_packed(s, session_id=ref.session_id, snapshot_id=snapshot_id)
            if self.workspace.recorder is not None and self.workspace.recorder.enabled:
                changed = await record_restore(
                    s,
                    session_id=ref.session_id,
                    before_id=safety.id,
                    author_id=author_id,
                    version=version,
                    written=bool(rewritten or inserted),
                    removed=bool(deleted),
                )
            else:
                changed = 0
            # The paths gone, for the listeners (the state before is the safety snapshot).
            gone: list[tuple[str, str]] = []
            if deleted:
                gone = [
                    (str(p), str(t))
                    for p, t in await s.execute(
                        _GONE_STMT, {"sid": ref.session_id, "before": safety.id}
                    )
                ]
            safety_id = safety.id
        if index_deferred:
            self.schedule_search_refresh(ref.session_id)
        await self._notify_reset(ref, gone)
        return {
            "restored_items": count,
            "changed_files": changed,
            "safety_snapshot_id": safety_id,
            "snapshot_id": snapshot_id,
        }

    # --- search-index refresh after a large restore ----------------------------------------

    def schedule_search_refresh(self, session_id: int) -> None:
        """Refresh the session's index entries a restore marked stale, in the background (one
        task per session at a time; a later mark is taken by the running task's retry)."""
        running = self._refreshes.get(session_id)
        if running is not None and not running.done():
            self._refresh_again.add(session_id)
            return
        self._refreshes[session_id] = asyncio.create_task(self._refresh_search(session_id))

    async def _refresh_search(self, session_id: int) -> None:
        while True:
            self._refresh_again.discard(session_id)
            try:
                await self.refresh_search_now(session_id)
            except Exception:
                # The marks stay: search stays exact, and the next start refreshes them.
                log.exception("search-index refresh of session %s failed", session_id)
                return
            if session_id not in self._refresh_again:
                return

    @retried
    async def refresh_search_now(self, session_id: int) -> None:
        """Refresh the session's stale index entries (``search_index.refresh_stale``)."""
        async with self.db.session() as s, s.begin():
            await refresh_stale(s, session_id)

    async def refresh_all_stale(self) -> int:
        """Refresh every session's stale index entries (at start, and in the purge loop: marks
        a crash left behind). Returns the number of sessions refreshed."""
        async with self.db.session() as s:
            sessions = [int(r[0]) for r in (await s.execute(STALE_SESSIONS)).all()]
        for session_id in sessions:
            await self.refresh_search_now(session_id)
        return len(sessions)

    async def search_refreshed(self) -> None:
        """Wait for the refreshes in flight (tests, benches)."""
        while pending := [t for t in self._refreshes.values() if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _notify_reset(self, ref: WorkspaceRef, gone: list[tuple[str, str]]) -> None:
        """Tell listeners (browser, sandbox) the tree was replaced: what is ``gone`` (path,
        type) is deleted (deepest first), everything else rewritten."""
        async with self.db.read() as conn:
            items = (await conn.execute(_TREE_NOW_STMT, {"sid": ref.session_id})).all()
        changes = [
            Change("delete", p, "folder" if t == "folder" else "file", source="restore")
            for p, t in sorted(gone, reverse=True)
        ]
        changes += [
            Change(
                "mkdir" if kind == "folder" else "write",
                str(path),
                "folder" if kind == "folder" else "file",
                version=int(version),
                size=int(size or 0),
                source="restore",
            )
            for path, kind, version, size in items
        ]
        await self.workspace._notify(ref, changes)

    # --- trash -------------------------------------------------------------------------------

    @retried
    async def restore_trash(self, ref: WorkspaceRef, entry_id: int) -> dict[str, Any]:
        """Put a deleted file or folder back where it was (409 if that path is taken now)."""
        snap = await self.get(ref, entry_id, trash=True)
        root = snap.root_path
        try:
            async with self.db.session() as s, s.begin():
                taken = (
                    await s.execute(
                        text(
                            "SELECT type FROM workspace_items WHERE session_id = :sid AND full_path = :p"
                        ),
                        {"sid": ref.session_id, "p": root},
                    )
                ).first()
                if taken is not None:
                    raise Conflict(
                        f"{root!r} exists again; rename or delete it, then restore",
                        code="restore_target_exists",
                        path=root,
                    )
                await self.workspace._check_quota(s, ref, snap.file_count + 1, snap.total_bytes)
                _, made = await self.workspace._ensure_folders(s, ref, ancestors(root))
                count = await materialize(
                    s, session_id=ref.session_id, snapshot_id=entry_id, version=1
                )
                await drop(s, entry_id)
        except TooLarge:
            raise
        items = [
            i
            for i in await self.workspace.list_items(ref)
            if i.path == root or i.path.startswith(root + "/")
        ]
        changes = [Change("mkdir", p, "folder", version=1, source="restore") for p in made]
        changes += [
            Change(
                "mkdir" if i.type == "folder" else "write",
                i.path,
                i.type,
                version=i.version,
                size=i.size,
                source="restore",
            )
            for i in items
        ]
        await self.workspace._notify(ref, changes)
        return {"path": root, "restored_items": count}

    @retried
    async def trash_workspace(self, sess: CodeSession) -> None:
        """Before a session is deleted: its files go to the user's trash (restorable as a new
        workspace) and its file history is released."""
        async with self.db.session() as s, s.begin():
            await capture(
                s,
                session_id=sess.id,
                user_id=sess.user_id,
                kind="trash",
                name=sess.name,
                root_type="workspace",
                meta={
                    "uuid": str(sess.uuid),
                    "name": sess.name,
                    "language": sess.language,
                    "network_enabled": sess.network_enabled,
                    "entry_file": sess.entry_file,
                },
            )
            await self._drop_history(s, sess.id)
            await s.execute(
                text(
                    "UPDATE snapshots SET session_id = NULL WHERE session_id = :sid AND kind = 'trash' AND root_type = 'workspace'"
                ),
                {"sid": sess.id},
            )
            others = (
                await s.execute(
                    text("SELECT id FROM snapshots WHERE session_id = :sid"), {"sid": sess.id}
                )
            ).all()
            for (sid,) in others:
                await drop(s, int(sid))

    async def release_user(self, s: AsyncSession, user_id: int) -> None:
        """In the transaction deleting a user: release the contents of their snapshots, trash
        and file history (the cascades would delete those rows without releasing the blobs)."""
        sessions = (
            await s.execute(text("SELECT id FROM sessions WHERE user_id = :u"), {"u": user_id})
        ).all()
        for (sid,) in sessions:
            await self._drop_history(s, int(sid))
        snaps = (
            await s.execute(
                text(
                    "SELECT id FROM snapshots WHERE user_id = :u OR session_id IN"
                    " (SELECT id FROM sessions WHERE user_id = :u) ORDER BY id"
                ),
                {"u": user_id},
            )
        ).all()
        for (snap_id,) in snaps:
            await drop(s, int(snap_id))

    async def _drop_history(self, s: AsyncSession, session_id: int) -> None:
        rows = (
            await s.execute(
                text(
                    "SELECT blob_hash, COUNT(*) FROM file_versions WHERE session_id = :sid AND blob_hash IS NOT NULL GROUP BY blob_hash"
                ),
                {"sid": session_id},
            )
        ).all()
        await s.execute(
            text("DELETE FROM file_versions WHERE session_id = :sid"), {"sid": session_id}
        )
        for digest, n in rows:
            await blobstore.release(s, [digest], int(n))

    async def list_workspace_trash(self, user_id: int) -> list[Snapshot]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Snapshot)
                .where(
                    Snapshot.user_id == user_id,
                    Snapshot.kind == "trash",
                    Snapshot.session_id.is_(None),
                )
                .order_by(Snapshot.id.desc())
            )
            return list(rows.all())

    async def _own_workspace_entry(self, user_id: int, entry_id: int) -> Snapshot:
        async with self.db.session() as s:
            snap = await s.get(Snapshot, entry_id)
        if (
            snap is None
            or snap.user_id != user_id
            or snap.kind != "trash"
            or snap.session_id is not None
        ):
            raise NotFound(f"no deleted workspace {entry_id}", code="snapshot_not_found")
        return snap

    @retried
    async def restore_workspace(self, user_id: int, entry_id: int) -> CodeSession:
        """A deleted workspace back, under its old uuid when free."""
        snap = await self._own_workspace_entry(user_id, entry_id)
        meta = snap.meta or {}
        async with self.db.session() as s, s.begin():
            old = uuid_mod.UUID(meta["uuid"]) if meta.get("uuid") else None
            if old is not None and await s.scalar(
                select(CodeSession.id).where(CodeSession.uuid == old)
            ):
                old = None
            sess = CodeSession(
                user_id=user_id,
                name=str(meta.get("name") or snap.name),
                language=str(meta.get("language") or "python"),
                network_enabled=bool(meta.get("network_enabled")),
                entry_file=meta.get("entry_file"),
            )
            if old is not None:
                sess.uuid = old
            s.add(sess)
            await s.flush()
            await materialize(s, session_id=sess.id, snapshot_id=entry_id, version=1)
            await drop(s, entry_id)
        return sess

    @retried
    async def purge_workspace(self, user_id: int, entry_id: int) -> None:
        await self._own_workspace_entry(user_id, entry_id)
        async with self.db.session() as s, s.begin():
            await drop(s, entry_id)

    # --- fork --------------------------------------------------------------------------------

    async def can_fork(self, user_id: int, sess: CodeSession) -> bool:
        """Whether a grant allows it; a grant's refusal (403 ``forbidden_role``: a member below
        the workspace's fork policy) is raised when no other grant allows it."""
        if sess.user_id == user_id:
            return True
        refused: Forbidden | None = None
        for grant in self.fork_grants:
            try:
                if await grant(user_id, sess):
                    return True
            except Forbidden as exc:
                refused = exc
        if refused is not None:
            raise refused
        return False

    @retried
    async def fork(
        self, user_id: int, raw_uuid: str, name: str | None, max_per_user: int
    ) -> CodeSession:
        from coolcoding.services.sessions import parse_uuid

        async with self.db.session() as s, s.begin():
            src = await s.scalar(
                select(CodeSession).where(CodeSession.uuid == parse_uuid(raw_uuid))
            )
            if src is None or not await self.can_fork(user_id, src):
                raise NotFound("no such session", code="session_not_found")
            if max_per_user > 0:
                owned = await s.scalar(
                    select(func.count())
                    .select_from(CodeSession)
                    .where(CodeSession.user_id == user_id)
                )
                if (owned or 0) >= max_per_user:
                    raise Conflict(
                        f"you have {owned} sessions, the most allowed; delete one first",
                        code="too_many_sessions",
                        limit=max_per_user,
                    )
            fork = CodeSession(
                user_id=user_id,
                name=(name or f"{src.name} (fork)")[:255],
                language=src.language,
                network_enabled=src.network_enabled,
                entry_file=src.entry_file,
                forked_from_uuid=src.uuid,
                forked_from_name=src.name,
                fork_count=0,
            )
            s.add(fork)
            await s.flush()
            await copy_items(s, from_id=src.id, to_id=fork.id)
            await s.execute(
                text("UPDATE sessions SET fork_count = fork_count + 1 WHERE id = :id"),
                {"id": src.id},
            )
        return fork

    # --- accounting --------------------------------------------------------------------------

    async def storage(self, user_id: int) -> dict[str, int]:
        """Bytes stored for a user: current files, and history (each distinct content once)."""
        async with self.db.session() as s:
            current = (
                await s.execute(
                    text(
                        "SELECT COALESCE(SUM(w.size_bytes), 0) FROM workspace_items w JOIN sessions x ON x.id = w.session_id WHERE x.user_id = :u"
                    ),
                    {"u": user_id},
                )
            ).scalar_one()
            history = (
                await s.execute(
                    text(
                        "SELECT COALESCE(SUM(b.stored_size), 0), COALESCE(SUM(b.size), 0) FROM content_blobs b WHERE b.hash IN ("
                        " SELECT v.blob_hash FROM file_versions v JOIN sessions x ON x.id = v.session_id WHERE x.user_id = :u"
                        " UNION SELECT f.blob_hash FROM snapshot_files f JOIN snapshots n ON n.id = f.snapshot_id WHERE n.user_id = :u)"
                    ),
                    {"u": user_id},
                )
            ).one()
        return {
            "files_bytes": int(current),
            "history_stored_bytes": int(history[0]),
            "history_content_bytes": int(history[1]),
            "total_stored_bytes": int(current) + int(history[0]),
        }
