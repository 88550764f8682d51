"""File history: every content change of a file is a version (who, what, when), kept in the
content-addressed blob store; consecutive changes from one source coalesce; the last
``history_max_versions`` per file are kept.

``HistoryRecorder`` is called by ``WorkspaceService`` inside each write's transaction, so a
change and its version land together or not at all. ``HistoryService`` serves the API: list,
read, diff and restore (a restore is a new version, never a rewrite of history). On PostgreSQL an
edit's version is written by one statement and compacted later (services/history_deferred.py).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import FileVersion, as_utc, utcnow
from coolcoding.errors import Conflict, InvalidInput, NotFound
from coolcoding.services import blobstore
from coolcoding.services.blobstore import tsql
from coolcoding.services.history_deferred import deferred_save
from coolcoding.services.workspace_types import ItemInfo, WorkspaceRef, looks_binary
from coolcoding.settings import Settings

# The service's write sources, as history names them.
SOURCES = {"api": "editor", "sandbox": "terminal"}

# The latest version: id, source, author, start, its content's digest, the delta base of its blob,
# the key of its blob (a pending row's key differs from the digest: services/blobstore.py).
_LATEST = tsql(
    "SELECT v.id, v.source, v.author_id, v.created_at,"
    " CASE WHEN b.encoding = 'pending' THEN b.base_hash ELSE v.blob_hash END,"
    " CASE WHEN b.encoding = 'delta' THEN b.base_hash END, v.blob_hash"
    " FROM file_versions v LEFT JOIN content_blobs b ON b.hash = v.blob_hash"
    " WHERE v.session_id = :sid AND v.path = :path ORDER BY v.id DESC LIMIT 1",
    columns=("created_at",),
)
_INSERT = tsql(
    "INSERT INTO file_versions (session_id, path, blob_hash, size, is_binary, source, author_id,"
    " changes, created_at, updated_at)"
    " VALUES (:sid, :path, :hash, :size, :binary, :source, :author, 1, :now, :now)",
    "now",
)
_COALESCE = tsql(
    "UPDATE file_versions SET blob_hash = :hash, size = :size, is_binary = :binary,"
    " changes = changes + 1, updated_at = :now WHERE id = :id",
    "now",
)
_BEYOND = text(
    "SELECT id, blob_hash FROM file_versions WHERE session_id = :sid AND path = :path"
    " ORDER BY id DESC LIMIT 1000 OFFSET :keep"
)
# A version's columns (``_version``); its content's digest (a pending row's ``base_hash``), and
# the key of the blob holding it last.
_VERSION_COLS = (
    "v.id, v.path, CASE WHEN p.encoding = 'pending' THEN p.base_hash ELSE v.blob_hash END,"
    " v.size, v.is_binary, v.source, v.author_id, v.changes, v.created_at, v.updated_at,"
    " v.blob_hash FROM file_versions v LEFT JOIN content_blobs p ON p.hash = v.blob_hash"
)


# The save fast path on PostgreSQL (``HistoryRecorder.fast_save``): one unlocked read, then the
# whole change in one statement (its own transaction), so the rows it shares with other saves
# (a blob many files contain, its delta base) are locked for one statement, not a transaction of
# eight round trips. Anything unusual (a new file, a conflict, content not in history yet, the
# quota) matches nothing here and takes the general path, which explains it.
_FAST_READ = tsql(
    "SELECT w.id, w.type, w.version, w.content_hash, w.content,"
    " v.id, v.source, v.author_id, v.created_at, v.blob_hash, ob.depth,"
    " EXISTS (SELECT 1 FROM content_blobs nb WHERE nb.hash = :digest),"
    " (SELECT k.id FROM file_versions k WHERE k.session_id = :sid AND k.path = :path"
    "  ORDER BY k.id DESC LIMIT 1 OFFSET :keep)"
    " FROM workspace_items w"
    " LEFT JOIN LATERAL (SELECT id, source, author_id, created_at, blob_hash FROM file_versions"
    "  WHERE session_id = :sid AND path = :path ORDER BY id DESC LIMIT 1) v ON true"
    " LEFT JOIN content_blobs ob ON ob.hash = w.content_hash"
    " WHERE w.session_id = :sid AND w.full_path = :path",
    columns=("created_at",),
)
_FAST_WRITE = tsql(
    "WITH upd AS ("
    " UPDATE workspace_items SET content = :content, size_bytes = :size, content_hash = :digest,"
    "  is_binary = :binary, version = version + 1, updated_at = :now, last_modified_by = :author"
    " WHERE id = :item_id AND version = :old_version AND content_hash = :old_hash"
    "  AND (size_bytes >= :size OR (SELECT COALESCE(SUM(q.size_bytes), 0) FROM workspace_items q"
    "   WHERE q.session_id = :sid) - size_bytes + :size <= :max_bytes)"
    " RETURNING full_path, name, type, size_bytes, version, content_hash, is_binary, updated_at),"
    # The delta's base (the replaced content) gains a reference, unless the new content is
    # already stored (then the delta is not kept).
    " base AS (UPDATE content_blobs SET refs = refs + 1 WHERE hash = :base_hash"
    "  AND EXISTS (SELECT 1 FROM upd)"
    "  AND NOT EXISTS (SELECT 1 FROM content_blobs e WHERE e.hash = :digest) RETURNING depth),"
    " blob AS (INSERT INTO content_blobs (hash, encoding, base_hash, depth, size, stored_size,"
    "  refs, data, created_at)"
    "  SELECT :digest, CASE WHEN EXISTS (SELECT 1 FROM base) THEN 'delta' ELSE CAST(:encoding AS VARCHAR) END,"
    "  (SELECT CAST(:base_hash AS VARCHAR) FROM base), COALESCE((SELECT depth + 1 FROM base), 0),"
    "  :size, CASE WHEN EXISTS (SELECT 1 FROM base) THEN CAST(:delta_size AS BIGINT) ELSE CAST(:stored_size AS BIGINT) END, 1,"
    "  CASE WHEN EXISTS (SELECT 1 FROM base) THEN CAST(:delta AS BYTEA) ELSE CAST(:data AS BYTEA) END, :now"
    "  WHERE EXISTS (SELECT 1 FROM upd)"
    "  ON CONFLICT (hash) DO UPDATE SET refs = content_blobs.refs + 1"
    "  RETURNING (xmax = 0) AS inserted),"
    " coal AS (UPDATE file_versions SET blob_hash = :digest, size = :size, is_binary = :binary,"
    "  changes = changes + 1, updated_at = :now"
    "  WHERE id = :latest_id AND blob_hash = :old_hash AND CAST(:coalesce AS BOOLEAN) AND EXISTS (SELECT 1 FROM upd)"
    "  RETURNING id),"
    " ins AS (INSERT INTO file_versions (session_id, path, blob_hash, size, is_binary, source,"
    "  author_id, changes, created_at, updated_at)"
    "  SELECT :sid, :path, :digest, :size, :binary, :source, :author, 1, :now, :now"
    "  WHERE EXISTS (SELECT 1 FROM upd) AND NOT EXISTS (SELECT 1 FROM coal) RETURNING id),"
    # A coalesced version no longer holds the content it replaced.
    " rel AS (UPDATE content_blobs SET refs = refs - 1 WHERE hash = :old_hash"
    "  AND EXISTS (SELECT 1 FROM coal) RETURNING refs)"
    " SELECT upd.full_path, upd.name, upd.type, upd.size_bytes, upd.version, upd.content_hash,"
    "  upd.is_binary, upd.updated_at, (SELECT inserted FROM blob), EXISTS (SELECT 1 FROM base),"
    "  (SELECT refs FROM rel), EXISTS (SELECT 1 FROM ins) FROM upd",
    "now",
    columns=("updated_at",),
)


@dataclass(frozen=True)
class FastSave:
    """What ``HistoryRecorder.fast_save`` did: the saved item's row (INFO columns) and the
    bookkeeping left for ``after_fast_save``."""

    row: tuple[Any, ...]
    extra_base: str | None
    unreferenced: str | None
    retention: bool


def source_name(source: str) -> str:
    return SOURCES.get(source, source)


class HistoryRecorder:
    """The in-transaction hooks of ``WorkspaceService`` (see services/workspace.py)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.history_enabled

    async def on_write(
        self,
        s: AsyncSession,
        ref: WorkspaceRef,
        path: str,
        old: tuple[str, bytes] | None,
        new_hash: str,
        new: bytes,
        source: str,
        author_id: int | None,
    ) -> None:
        """A file's content became ``new`` (it was ``old`` = (hash, content), None if new)."""
        src = source_name(source)
        now = utcnow()
        p = {"sid": ref.session_id, "path": path}
        latest = (await s.execute(_LATEST, p)).first()
        if latest is not None and latest[4] == new_hash:
            return
        if old is not None and (latest is None or latest[4] != old[0]):
            # The content being replaced is not in history (made before history was on, or by a
            # snapshot restore): keep it first, so that no content is ever lost.
            await self._insert(s, p, old[0], old[1], "previous", None, now, base=None)
            latest = None
        window = timedelta(seconds=self.settings.history_coalesce_s)
        if (
            latest is not None
            and old is not None
            and window.total_seconds() > 0
            and src not in ("restore", "upload")
            and latest[1] == src
            and latest[2] == author_id
            and latest[4] is not None
            and now - as_utc(latest[3]) < window
        ):
            base_hash = latest[5]
            base = (base_hash, await blobstore.read(s, base_hash)) if base_hash else None
            await blobstore.put(
                s, new_hash, new, base=base, max_depth=self.settings.history_delta_max_depth
            )
            await s.execute(
                _COALESCE,
                {
                    "id": latest[0],
                    "hash": new_hash,
                    "size": len(new),
                    "binary": looks_binary(new),
                    "now": now,
                },
            )
            await blobstore.release(s, [latest[6]])
            return
        await self._insert(s, p, new_hash, new, src, author_id, now, base=old)
        await self._enforce_retention(s, p)

    async def fast_save(
        self,
        conn: AsyncConnection,
        ref: WorkspaceRef,
        path: str,
        content: bytes,
        digest: str,
        *,
        base_version: int | None,
        base_hash: str | None,
        source: str,
        author_id: int | None,
        max_bytes: int,
    ) -> FastSave | None:
        """A save of an existing file with its version, in one statement (PostgreSQL; ``conn``
        in autocommit). None: not the common case, the caller takes the general path."""
        if base_version == 0:
            return None
        if self.settings.history_deferred_save:
            # One statement, no shared row, no delta: services/history_deferred.py.
            done = await deferred_save(
                conn,
                self.settings,
                session_id=ref.session_id,
                path=path,
                content=content,
                digest=digest,
                binary=looks_binary(content),
                base_version=base_version,
                base_hash=base_hash,
                source=source_name(source),
                author_id=author_id,
                max_bytes=max_bytes,
            )
            if done is None:
                return None
            return FastSave(
                row=done.row,
                extra_base=None,
                unreferenced=done.unreferenced,
                retention=done.retention,
            )
        p = {"sid": ref.session_id, "path": path}
        keep = self.settings.history_max_versions
        cur = (
            await conn.execute(_FAST_READ, {**p, "digest": digest, "keep": max(keep - 1, 0)})
        ).first()
        if cur is None:
            return None
        item_id, typ, version, old_hash, old_content = cur[:5]
        latest_id, latest_src, latest_author, latest_at, latest_hash, old_depth = cur[5:11]
        new_exists, full = bool(cur[11]), cur[12] is not None
        if (
            typ != "file"
            or old_hash == digest
            or (base_version is not None and base_version != version)
            or (base_hash is not None and base_hash != old_hash)
            or latest_id is None
            or latest_hash != old_hash  # the replaced content is not in history yet
        ):
            return None
        src = source_name(source)
        now = utcnow()
        window = self.settings.history_coalesce_s
        coalesce = (
            window > 0
            and src not in ("restore", "upload")
            and latest_src == src
            and latest_author == author_id
            and (now - as_utc(latest_at)).total_seconds() < window
        )
        # The new content's encoding: nothing to compute when it is stored already (the raw
        # bytes only serve if it vanished meanwhile); a delta against the replaced content for
        # a new version; a full copy for a coalesced one (its base is being let go).
        delta: bytes | None = None
        base: str | None = None
        if new_exists:
            enc = blobstore.Encoded("raw", None, content)
        elif (
            not coalesce
            and old_depth is not None
            and int(old_depth) + 1 <= self.settings.history_delta_max_depth
        ):
            enc = blobstore.encode(content, (old_hash, old_content or b""))
            if enc.encoding == "delta":
                delta, base = enc.data, old_hash
                enc = blobstore.Encoded("raw", None, content)
        else:
            enc = blobstore.encode(content)
        row = (
            await conn.execute(
                _FAST_WRITE,
                {
                    **p,
                    "content": content,
                    "size": len(content),
                    "digest": digest,
                    "binary": looks_binary(content),
                    "now": now,
                    "item_id": item_id,
                    "old_version": version,
                    "old_hash": old_hash,
                    "max_bytes": max_bytes,
                    "base_hash": base,
                    "encoding": enc.encoding,
                    "stored_size": len(enc.data),
                    "data": enc.data,
                    "delta_size": len(delta) if delta is not None else 0,
                    "delta": delta if delta is not None else b"",
                    "latest_id": latest_id,
                    "coalesce": coalesce,
                    "source": src,
                    "author": author_id,
                },
            )
        ).first()
        if row is None:
            return None
        inserted, based, released_to, new_version = row[8], row[9], row[10], row[11]
        return FastSave(
            row=tuple(row[:8]),
            extra_base=base if based and not inserted else None,
            unreferenced=old_hash if released_to is not None and int(released_to) <= 0 else None,
            retention=bool(new_version) and full,
        )

    async def after_fast_save(self, db: Database, ref: WorkspaceRef, done: FastSave) -> None:
        """The fast path's bookkeeping, each in its own short transaction: a base reference
        that a concurrently stored blob made unnecessary, a blob left unreferenced, versions
        beyond retention. A crash before it leaves a surplus (a count too high, a blob kept, a
        version too many: ``blobstore.sweep`` and the next save catch up), never a loss."""
        if done.extra_base is not None or done.unreferenced is not None:

            async def release() -> None:
                # In autocommit (blobstore.release): usually one statement, without the BEGIN
                # and COMMIT round trips of a transaction around it.
                async with db.reader.connect() as conn:
                    if done.extra_base is not None:
                        await blobstore.release(conn, [done.extra_base])
                    if done.unreferenced is not None:
                        await blobstore.release(conn, [done.unreferenced], 0)

            await blobstore.retrying(release)
        if done.retention:
            p = {"sid": ref.session_id, "path": str(done.row[0])}

            async def purge() -> None:
                async with db.session() as s, s.begin():
                    await self._enforce_retention(s, p)

            await blobstore.retrying(purge)

    async def on_create_many(
        self, s: AsyncSession, ref: WorkspaceRef, files: dict[str, tuple[str, bytes]], source: str
    ) -> None:
        """Many new files at once (a bulk arrival from the sandbox): their first versions in two
        statements. Retention is applied at each file's next change."""
        if not files:
            return
        counts: dict[str, tuple[bytes, int]] = {}
        for digest, content in files.values():
            prev = counts.get(digest)
            counts[digest] = (content, (prev[1] if prev else 0) + 1)
        await blobstore.put_many(s, counts)
        now = utcnow()
        src = source_name(source)
        await s.execute(
            _INSERT,
            [
                {
                    "sid": ref.session_id,
                    "path": path,
                    "hash": digest,
                    "size": len(content),
                    "binary": looks_binary(content),
                    "source": src,
                    "author": None,
                    "now": now,
                }
                for path, (digest, content) in files.items()
            ],
        )

    async def _insert(
        self,
        s: AsyncSession,
        p: dict[str, Any],
        digest: str,
        content: bytes,
        source: str,
        author_id: int | None,
        now: datetime,
        *,
        base: tuple[str, bytes] | None,
    ) -> None:
        await blobstore.put(
            s, digest, content, base=base, max_depth=self.settings.history_delta_max_depth
        )
        await s.execute(
            _INSERT,
            {
                **p,
                "hash": digest,
                "size": len(content),
                "binary": looks_binary(content),
                "source": source,
                "author": author_id,
                "now": now,
            },
        )

    async def _enforce_retention(self, s: AsyncSession, p: dict[str, Any]) -> None:
        beyond = (await s.execute(_BEYOND, {**p, "keep": self.settings.history_max_versions})).all()
        if not beyond:
            return
        gone = (
            await s.execute(
                delete(FileVersion)
                .where(FileVersion.id.in_([int(r[0]) for r in beyond]))
                .returning(FileVersion.blob_hash)
            )
        ).all()
        # Only rows this transaction deleted: a concurrent purge of the same rows releases its own.
        await blobstore.release(s, [r[0] for r in gone])

    async def on_delete(
        self, s: AsyncSession, ref: WorkspaceRef, path: str, item_type: str, source: str
    ) -> None:
        """Before a file or folder is deleted: it goes to the trash (a snapshot of it), a big
        folder first gets a snapshot of the whole workspace, and each file under it gets a
        "deleted" version (its content stays in earlier versions and in the trash)."""
        from coolcoding.services.snapshot_sql import _scope, capture

        user_id = (
            await s.execute(
                text("SELECT user_id FROM sessions WHERE id = :sid"), {"sid": ref.session_id}
            )
        ).scalar_one()
        where, params = _scope("w", path)
        if item_type == "folder":
            files = (
                await s.execute(
                    text(
                        "SELECT COUNT(*) FROM workspace_items w WHERE w.session_id = :sid"  # noqa: S608 (constant SQL fragments; values are bound)
                        f" AND w.type = 'file'{where}"
                    ),
                    {**params, "sid": ref.session_id},
                )
            ).scalar_one()
            if int(files) > self.settings.snapshot_before_delete_min_files:
                await capture(
                    s,
                    session_id=ref.session_id,
                    user_id=user_id,
                    kind="auto",
                    name=f"Before deleting {path} ({files} files)",
                )
        await capture(
            s,
            session_id=ref.session_id,
            user_id=user_id,
            kind="trash",
            name=path,
            root=path,
            root_type=item_type,
            meta={"source": source_name(source)},
        )
        await s.execute(
            tsql(
                "INSERT INTO file_versions (session_id, path, blob_hash, size, is_binary, source,"  # noqa: S608 (constant SQL fragments; values are bound)
                " author_id, changes, created_at, updated_at)"
                " SELECT w.session_id, w.full_path, NULL, 0, false, :source, NULL, 1, :now, :now"
                f" FROM workspace_items w WHERE w.session_id = :sid AND w.type = 'file'{where}",
                "now",
            ),
            {
                **params,
                "sid": ref.session_id,
                "source": f"delete:{source_name(source)}"[:16],
                "now": utcnow(),
            },
        )

    async def on_move(self, s: AsyncSession, ref: WorkspaceRef, src: str, dst: str) -> None:
        """History follows a rename: versions of ``src`` (and below) now belong to ``dst``."""
        from coolcoding.filesync.paths import subtree_bounds

        lo, hi = subtree_bounds(src)
        p = {"sid": ref.session_id, "src": src, "dst": dst, "lo": lo, "hi": hi, "n": len(src) + 1}
        await s.execute(
            text("UPDATE file_versions SET path = :dst WHERE session_id = :sid AND path = :src"), p
        )
        await s.execute(
            text(
                "UPDATE file_versions SET path = :dst || substr(path, :n)"
                " WHERE session_id = :sid AND path >= :lo AND path < :hi"
            ),
            p,
        )


@dataclass(frozen=True)
class VersionInfo:
    id: int
    path: str
    kind: str  # write | delete
    blob_hash: str | None
    size: int
    is_binary: bool
    source: str
    author_id: int | None
    changes: int
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        from coolcoding.services.workspace_types import _iso

        return {
            "id": self.id,
            "path": self.path,
            "kind": self.kind,
            "content_hash": self.blob_hash,
            "size": self.size,
            "is_binary": self.is_binary,
            "source": self.source,
            "author_id": self.author_id,
            "changes": self.changes,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _version(row: Any) -> VersionInfo:
    source = str(row[5])
    deleted = row[2] is None
    return VersionInfo(
        id=int(row[0]),
        path=row[1],
        kind="delete" if deleted else "write",
        blob_hash=row[2],
        size=int(row[3]),
        is_binary=bool(row[4]),
        source=source.removeprefix("delete:"),
        author_id=row[6],
        changes=int(row[7]),
        created_at=as_utc(row[8]),
        updated_at=as_utc(row[9]),
    )


async def _read_version(s: AsyncSession, key: str, info: VersionInfo) -> bytes:
    """A version's content from its blob ``key``; a pending one compacted meanwhile (its row gone)
    is by then the shared blob of its digest."""
    assert info.blob_hash is not None
    try:
        return await blobstore.read(s, key)
    except NotFound:
        if key == info.blob_hash:
            raise
        return await blobstore.read(s, info.blob_hash)


class HistoryService:
    """List, read, diff and restore file versions."""

    def __init__(self, db: Database, settings: Settings, workspace: Any) -> None:
        self.db = db
        self.settings = settings
        self.workspace = workspace

    async def versions(
        self, ref: WorkspaceRef, path: str | None, *, limit: int = 100, before: int | None = None
    ) -> list[VersionInfo]:
        sql = f"SELECT {_VERSION_COLS} WHERE v.session_id = :sid"
        p: dict[str, Any] = {"sid": ref.session_id, "limit": limit}
        if path is not None:
            sql += " AND v.path = :path"
            p["path"] = self.workspace.normalize(path)
        if before is not None:
            sql += " AND v.id < :before"
            p["before"] = before
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    tsql(
                        sql + " ORDER BY v.id DESC LIMIT :limit",
                        columns=("created_at", "updated_at"),
                    ),
                    p,
                )
            ).all()
        return [_version(r) for r in rows]

    async def get(self, ref: WorkspaceRef, version_id: int) -> tuple[VersionInfo, bytes]:
        async with self.db.session() as s:
            row = (
                await s.execute(
                    tsql(
                        f"SELECT {_VERSION_COLS} WHERE v.id = :id AND v.session_id = :sid",
                        columns=("created_at", "updated_at"),
                    ),
                    {"id": version_id, "sid": ref.session_id},
                )
            ).first()
            if row is None:
                raise NotFound(
                    f"no version {version_id} in this workspace", code="version_not_found"
                )
            info = _version(row)
            content = b"" if info.blob_hash is None else await _read_version(s, row[10], info)
        return info, content

    async def diff(self, ref: WorkspaceRef, a: int, b: int | None) -> dict[str, Any]:
        """Two versions (``b`` None: the file's current content) and their unified diff."""
        va, ca = await self.get(ref, a)
        if b is None:
            try:
                cur, cb = await self.workspace.read(ref, va.path)
            except NotFound:
                cur, cb = None, b""
            right: dict[str, Any] = {
                "current": True,
                "path": va.path,
                "version": cur.version if cur else None,
            }
        else:
            vb, cb = await self.get(ref, b)
            right = {"current": False, **vb.as_json()}
        binary = va.is_binary or looks_binary(cb)
        out: dict[str, Any] = {"from": va.as_json(), "to": right, "binary": binary}
        if binary:
            out.update(from_content=None, to_content=None, unified=None)
            return out
        ta, tb = ca.decode("utf-8"), cb.decode("utf-8")
        out["from_content"], out["to_content"] = ta, tb
        out["unified"] = "".join(
            difflib.unified_diff(
                ta.splitlines(keepends=True),
                tb.splitlines(keepends=True),
                fromfile=f"{va.path}@{a}",
                tofile=f"{va.path}@{b if b is not None else 'current'}",
            )
        )
        return out

    async def restore(
        self,
        ref: WorkspaceRef,
        version_id: int,
        *,
        to: str | None = None,
        base_version: int | None = None,
        author_id: int | None = None,
    ) -> dict[str, Any]:
        """Write a version's content back (to its path, or ``to``) as a new "restore" version.
        With ``base_version`` a file changed since (e.g. by the terminal) is a 409, not lost."""
        info, content = await self.get(ref, version_id)
        if info.kind == "delete":
            raise InvalidInput(
                "this version records a deletion; restore an earlier version",
                code="version_is_deletion",
            )
        path = self.workspace.normalize(to) if to else info.path
        try:
            current, _ = await self.workspace.read(ref, path)
        except NotFound:
            current = None
        if current is not None and current.type == "folder":
            raise Conflict(
                f"{path!r} is now a folder; restore to another path", code="is_a_folder", path=path
            )
        saved, created = await self.workspace.save_file(
            ref,
            path,
            content,
            base_version=base_version,
            source="restore",
            author_id=author_id,
        )
        assert isinstance(saved, ItemInfo)
        return {
            "path": saved.path,
            "version": saved.version,
            "restored_from": version_id,
            "recreated": current is None,
            "created": created,
            "previous_version": current.version if current is not None else None,
        }
