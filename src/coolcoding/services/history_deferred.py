"""The save with history on, deferred (PostgreSQL, ``history_deferred_save``), and the background
compaction that finishes its work.

A save of an existing file writes the file and its version in **one statement**: the version's
content goes to a ``pending`` blob row of its own (key ``p<version id>``: services/blobstore.py),
which later saves coalescing into that version overwrite. No row another save could share (a blob
of the same content, a delta's base) is locked, and no delta or compression is computed in the
request. ``HistoryCompactor`` then moves each *closed* version (a later version of its path
exists, or it is older than the coalescing window) onto the shared, reference-counted blob of its
digest, as a delta against the previous version when that helps, and deletes the pending row: in
one transaction per version, so a crash (SIGKILL) at any point leaves the version either pending
or compacted, its content always readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import as_utc, utcnow
from coolcoding.db.raw import first_row
from coolcoding.services import blobstore
from coolcoding.services.blobstore import tsql
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

# A compactor leaves a version alone for this long past the coalescing window: a save on another
# replica (its own clock) may still coalesce into it.
CLOCK_MARGIN_S = 5.0

# The latest version (``lv``: its content's digest, whether its blob is its own pending row), the
# file's update under its version, hash and quota checks (anything unusual matches nothing: the
# caller takes the general path, which explains it), then either the coalescing of the change
# into the latest version (its own pending row rewritten; the version row is locked first, as
# the compactor does) or a new version with a new pending row.
_SAVE = tsql(
    "WITH lv AS (SELECT v.id, v.source, v.author_id, v.created_at, v.blob_hash,"
    "  CASE WHEN b.encoding = 'pending' THEN b.base_hash ELSE v.blob_hash END AS digest,"
    "  COALESCE(b.encoding = 'pending', false) AS pending"
    "  FROM file_versions v LEFT JOIN content_blobs b ON b.hash = v.blob_hash"
    "  WHERE v.session_id = :sid AND v.path = :path ORDER BY v.id DESC LIMIT 1),"
    " upd AS (UPDATE workspace_items SET content = :content, size_bytes = :size,"
    "  content_hash = :digest, is_binary = :binary, version = version + 1, updated_at = :now,"
    "  last_modified_by = :author"
    "  WHERE session_id = :sid AND full_path = :path AND type = 'file'"
    "  AND content_hash <> :digest AND content_hash = (SELECT digest FROM lv)"
    "  AND (CAST(:base_version AS BIGINT) IS NULL OR version = :base_version)"
    "  AND (CAST(:base_hash AS VARCHAR) IS NULL OR content_hash = :base_hash)"
    "  AND (size_bytes >= :size OR (SELECT COALESCE(SUM(q.size_bytes), 0) FROM workspace_items q"
    "   WHERE q.session_id = :sid) - size_bytes + :size <= :max_bytes)"
    "  RETURNING full_path, name, type, size_bytes, version, content_hash, is_binary, updated_at),"
    " co AS (SELECT lv.id, lv.blob_hash, lv.pending FROM lv WHERE CAST(:may_coalesce AS BOOLEAN)"
    "  AND lv.blob_hash IS NOT NULL AND lv.source = :source"
    "  AND lv.author_id IS NOT DISTINCT FROM CAST(:author AS BIGINT)"
    "  AND lv.created_at > :cutoff AND EXISTS (SELECT 1 FROM upd)),"
    # The version now holds its content in its own pending row (``p<id>``: made now if its
    # content was a shared blob, e.g. its first version written by the general path).
    " vupd AS (UPDATE file_versions SET blob_hash = 'p' || CAST(id AS VARCHAR), size = :size,"
    "  is_binary = :binary, changes = changes + 1, updated_at = :now"
    "  WHERE id = (SELECT id FROM co) AND blob_hash = (SELECT blob_hash FROM co)"
    "  RETURNING blob_hash),"
    " pupd AS (INSERT INTO content_blobs (hash, encoding, base_hash, depth, size, stored_size,"
    "  refs, data, created_at)"
    "  SELECT vupd.blob_hash, 'pending', :digest, 0, :size, :size, 1, :content, :now FROM vupd"
    "  ON CONFLICT (hash) DO UPDATE SET base_hash = excluded.base_hash, size = excluded.size,"
    "  stored_size = excluded.stored_size, data = excluded.data RETURNING hash),"
    # ... and no longer the shared blob it had (once per version, not per save).
    " rel AS (UPDATE content_blobs SET refs = refs - 1"
    "  WHERE hash = (SELECT blob_hash FROM co WHERE NOT co.pending)"
    "  AND EXISTS (SELECT 1 FROM pupd) RETURNING hash, refs),"
    " nid AS (SELECT nextval(pg_get_serial_sequence('file_versions', 'id')) AS id"
    "  WHERE EXISTS (SELECT 1 FROM upd) AND NOT EXISTS (SELECT 1 FROM pupd)),"
    " pins AS (INSERT INTO content_blobs (hash, encoding, base_hash, depth, size, stored_size,"
    "  refs, data, created_at)"
    "  SELECT 'p' || CAST(nid.id AS VARCHAR), 'pending', :digest, 0, :size, :size, 1, :content, :now"
    "  FROM nid RETURNING hash),"
    " ins AS (INSERT INTO file_versions (id, session_id, path, blob_hash, size, is_binary, source,"
    "  author_id, changes, created_at, updated_at)"
    "  SELECT nid.id, :sid, :path, pins.hash, :size, :binary, :source, :author, 1, :now, :now"
    "  FROM nid, pins RETURNING id)"
    " SELECT upd.full_path, upd.name, upd.type, upd.size_bytes, upd.version, upd.content_hash,"
    "  upd.is_binary, upd.updated_at, EXISTS (SELECT 1 FROM ins),"
    "  (SELECT hash FROM rel WHERE refs <= 0),"
    # Retention is due when the file already had as many versions as are kept.
    "  (SELECT k.id FROM file_versions k WHERE k.session_id = :sid AND k.path = :path"
    "   ORDER BY k.id DESC LIMIT 1 OFFSET :keep) IS NOT NULL FROM upd",
    "now",
    "cutoff",
    columns=("updated_at",),
)


@dataclass(frozen=True)
class DeferredSave:
    """What ``deferred_save`` did: the saved item's row (INFO columns), whether it made a new
    version (else it coalesced), whether the file's versions are now beyond retention."""

    row: tuple[Any, ...]
    new_version: bool
    retention: bool
    unreferenced: str | None  # a shared blob the coalesced version let go of, now unreferenced


async def deferred_save(
    conn: AsyncConnection,
    settings: Settings,
    *,
    session_id: int,
    path: str,
    content: bytes,
    digest: str,
    binary: bool,
    base_version: int | None,
    base_hash: str | None,
    source: str,
    author_id: int | None,
    max_bytes: int,
) -> DeferredSave | None:
    """An edit of an existing file with its version, in one statement (``conn`` in autocommit).
    ``source`` is history's name of it. None: not the common case (the caller takes the general
    path)."""
    now = utcnow()
    window = settings.history_coalesce_s
    row = await first_row(
        conn,
        _SAVE,
        {
            "sid": session_id,
            "path": path,
            "content": content,
            "size": len(content),
            "digest": digest,
            "binary": binary,
            "now": now,
            "author": author_id,
            "base_version": base_version,
            "base_hash": base_hash,
            "max_bytes": max_bytes,
            "may_coalesce": window > 0 and source not in ("restore", "upload"),
            "source": source,
            "cutoff": now - timedelta(seconds=window),
            "keep": max(settings.history_max_versions - 1, 0),
        },
    )
    if row is None:
        return None
    return DeferredSave(
        row=tuple(row[:8]),
        new_version=bool(row[8]),
        retention=bool(row[8]) and bool(row[10]),
        unreferenced=None if row[9] is None else str(row[9]),
    )


# Closed versions still pending, oldest first (open ones are not even listed: a pass over the
# files being edited costs one query).
_PENDING = tsql(
    "SELECT b.hash FROM content_blobs b JOIN file_versions v"
    # (CASE: a digest is never cast, whatever order the planner evaluates the conditions in)
    " ON v.id = CASE WHEN b.encoding = 'pending' THEN CAST(substr(b.hash, 2) AS BIGINT) END"
    " WHERE b.hash >= 'p' AND b.hash < 'q' AND b.encoding = 'pending'"
    " AND (CAST(:everything AS BOOLEAN) OR v.created_at < :cutoff OR EXISTS (SELECT 1"
    "  FROM file_versions n WHERE n.session_id = v.session_id AND n.path = v.path AND n.id > v.id))"
    " ORDER BY v.id LIMIT :n",
    "cutoff",
)
# The version, then its pending row (a coalescing save's order). Only closed versions are
# compacted, and saves coalesce only into open ones (the latest, within the window), so neither
# waits for the other and the file's row is not locked: saves of it go on meanwhile.
_LOCK_VERSION = tsql(
    "SELECT session_id, path, created_at, blob_hash FROM file_versions WHERE id = :id"
    " FOR UPDATE SKIP LOCKED",
    columns=("created_at",),
)
_LOCK_PENDING = text(
    "SELECT base_hash, data FROM content_blobs WHERE hash = :key AND encoding = 'pending'"
    " FOR UPDATE"
)
_LATER = text(
    "SELECT 1 FROM file_versions WHERE session_id = :sid AND path = :path AND id > :id LIMIT 1"
)
_PREVIOUS = text(
    "SELECT v.blob_hash, b.encoding FROM file_versions v"
    " LEFT JOIN content_blobs b ON b.hash = v.blob_hash"
    " WHERE v.session_id = :sid AND v.path = :path AND v.id < :id ORDER BY v.id DESC LIMIT 1"
)


class HistoryCompactor:
    """Moves closed versions' contents from their pending rows to the shared blob store."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def compact_once(self, *, everything: bool = False) -> int:
        """One pass: compacts up to ``history_compact_batch`` closed versions, oldest first;
        returns how many. ``everything``: open versions too (no save may coalesce meanwhile:
        tests and benchmarks)."""
        window = self.settings.history_coalesce_s
        async with self.db.read() as conn:
            rows = await conn.execute(
                _PENDING,
                {
                    "n": self.settings.history_compact_batch,
                    "everything": everything or window <= 0,
                    "cutoff": utcnow() - timedelta(seconds=window + CLOCK_MARGIN_S),
                },
            )
            keys = [str(r[0]) for r in rows]
        done = 0
        for key in keys:  # oldest first: a version's delta base is compacted before it
            if await blobstore.retrying(lambda key=key: self._compact(key, everything)):  # type: ignore[misc]
                done += 1
        return done

    async def _compact(self, key: str, everything: bool) -> bool:
        version_id = int(key[1:])
        window = self.settings.history_coalesce_s
        async with self.db.session() as s, s.begin():
            v = (await s.execute(_LOCK_VERSION, {"id": version_id})).first()
            if v is None or v[3] != key:
                # Gone (retention, a deleted workspace: its row went with it), being coalesced
                # into (locked), or compacted by another replica.
                return False
            sid, path, created_at = v[0], v[1], v[2]
            p = {"sid": sid, "path": path, "id": version_id}
            if not everything and window > 0:
                cutoff = utcnow() - timedelta(seconds=window + CLOCK_MARGIN_S)
                if as_utc(created_at) >= cutoff and (await s.execute(_LATER, p)).first() is None:
                    return False  # still open: saves may coalesce into it
            pending = (await s.execute(_LOCK_PENDING, {"key": key})).first()
            if pending is None:
                return False
            digest, content = str(pending[0]), bytes(pending[1])
            await self._store(s, p, digest, content)
            await s.execute(
                text("UPDATE file_versions SET blob_hash = :digest WHERE id = :id"),
                {"digest": digest, "id": version_id},
            )
            await s.execute(text("DELETE FROM content_blobs WHERE hash = :key"), {"key": key})
        return True

    async def _store(self, s: AsyncSession, p: dict[str, Any], digest: str, content: bytes) -> None:
        """One reference to the shared blob of ``content``: a delta against the previous
        version's content when that is stored and the blob is new."""
        base: tuple[str, bytes] | None = None
        if not await blobstore.exists(s, digest):
            prev = (await s.execute(_PREVIOUS, p)).first()
            if prev is not None and prev[0] is not None and prev[1] not in (None, "pending"):
                base = (str(prev[0]), await blobstore.read(s, str(prev[0])))
        await blobstore.put(
            s, digest, content, base=base, max_depth=self.settings.history_delta_max_depth
        )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.history_compact_interval_s)
            try:
                while await self.compact_once() >= self.settings.history_compact_batch:
                    pass
            except Exception:
                log.exception("history compaction failed")

    async def start(self) -> None:
        if self.settings.history_compact_interval_s > 0:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
