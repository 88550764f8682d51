"""Whole-tree operations of snapshots, the trash and forks, done by the database in a few
set-based statements (a 10,000-file workspace is copied without passing through Python).

All functions run inside the caller's transaction: a crash at any point rolls everything back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from coolcoding.db.models import Snapshot, utcnow
from coolcoding.errors import NotFound
from coolcoding.filesync.paths import subtree_bounds
from coolcoding.services import blobstore
from coolcoding.services.blobstore import tsql
from coolcoding.services.search_index import rewrite_deferring_index, rowcount

_EMPTY = b""
_LOCK_BLOBS = text(
    "SELECT hash FROM content_blobs WHERE hash IN (SELECT blob_hash FROM snapshot_files"
    " WHERE snapshot_id = :snap) ORDER BY hash"
)
_LOCK_BLOBS_PG = text(str(_LOCK_BLOBS) + " FOR UPDATE")


def _scope(alias: str, root: str) -> tuple[str, dict[str, Any]]:
    """SQL limiting ``alias`` to the subtree at ``root`` ("" = the whole workspace)."""
    if not root:
        return "", {}
    lo, hi = subtree_bounds(root)
    return (
        f" AND ({alias}.full_path = :root OR ({alias}.full_path >= :lo AND {alias}.full_path < :hi))",
        {"root": root, "lo": lo, "hi": hi},
    )


async def capture(
    s: AsyncSession,
    *,
    session_id: int,
    user_id: int,
    kind: str,
    name: str,
    root: str = "",
    root_type: str = "workspace",
    meta: dict[str, Any] | None = None,
) -> Snapshot:
    """Record the workspace (or the subtree at ``root``) as a snapshot; contents become blobs
    (stored raw by the database; existing blobs just gain references)."""
    snap = Snapshot(
        session_id=session_id,
        user_id=user_id,
        kind=kind,
        name=name,
        root_path=root,
        root_type=root_type,
        meta=meta,
        file_count=0,
        total_bytes=0,
        created_at=utcnow(),
    )
    s.add(snap)
    await s.flush()
    where, params = _scope("w", root)
    params = {**params, "sid": session_id, "snap": snap.id}
    if s.get_bind().dialect.name == "postgresql":
        # The rows stay as recorded until commit: writers of these files wait (SQLite: the
        # transaction is a snapshot and holds the only write lock once it writes).
        await s.execute(
            text(
                f"SELECT w.id FROM workspace_items w WHERE w.session_id = :sid{where} FOR SHARE"  # noqa: S608 (constant fragments)
            ),
            params,
        )
    await s.execute(
        text(
            "INSERT INTO snapshot_files"  # noqa: S608 (constant SQL fragments; values are bound)
            " (snapshot_id, path, parent_path, name, type, blob_hash, size, is_binary)"
            " SELECT :snap, w.full_path, p.full_path, w.name, w.type, w.content_hash,"
            " w.size_bytes, w.is_binary FROM workspace_items w"
            " LEFT JOIN workspace_items p ON p.id = w.parent_id"
            f" WHERE w.session_id = :sid{where}"
        ),
        params,
    )
    # References: the contents already stored (usually all: history stored each as it was
    # saved) gain them in one update that reads no content; only the others are copied in (an
    # upsert, in case a concurrent writer stored one meanwhile).
    p = {"sid": session_id, "snap": snap.id, "empty": _EMPTY, "now": utcnow()}
    count, total, distinct = (
        await s.execute(
            text(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COUNT(DISTINCT blob_hash)"
                " FROM snapshot_files WHERE snapshot_id = :snap AND type = 'file'"
            ),
            {"snap": snap.id},
        )
    ).one()
    stored = rowcount(
        await s.execute(
            text(
                "UPDATE content_blobs SET refs = refs + g.n FROM (SELECT f.blob_hash AS h,"
                " COUNT(*) AS n FROM snapshot_files f WHERE f.snapshot_id = :snap"
                " AND f.type = 'file' GROUP BY f.blob_hash) g WHERE content_blobs.hash = g.h"
            ),
            p,
        )
    )
    # Every content stored already (the usual case; the rows updated are locked until commit,
    # so none of them can go meanwhile): nothing to copy in, and no scan looking for what is not.
    if stored < int(distinct):
        await _store_missing_contents(s, p)
    snap.file_count, snap.total_bytes = int(count), int(total)
    await s.flush()
    return snap


async def _store_missing_contents(s: AsyncSession, p: dict[str, Any]) -> None:
    """The contents of a snapshot being captured that the store lacks, copied in from the
    workspace with their references."""
    await s.execute(
        tsql(
            "INSERT INTO content_blobs"
            " (hash, encoding, base_hash, depth, size, stored_size, refs, data, created_at)"
            " SELECT g.h, 'raw', NULL, 0, w.size_bytes, w.size_bytes, g.n,"
            " COALESCE(w.content, :empty), :now FROM ("
            "  SELECT f.blob_hash AS h, COUNT(*) AS n, MIN(w2.id) AS id FROM snapshot_files f"
            "  JOIN workspace_items w2 ON w2.session_id = :sid AND w2.full_path = f.path"
            "  WHERE f.snapshot_id = :snap AND f.type = 'file' AND NOT EXISTS (SELECT 1"
            "  FROM content_blobs x WHERE x.hash = f.blob_hash) GROUP BY f.blob_hash) g"
            " JOIN workspace_items w ON w.id = g.id WHERE w.session_id = :sid"
            " ON CONFLICT (hash) DO UPDATE SET refs = content_blobs.refs + excluded.refs",
            "now",
        ),
        p,
    )


async def drop(s: AsyncSession, snapshot_id: int) -> None:
    """Delete a snapshot and release its contents."""
    p = {"snap": snapshot_id}
    # Lock the blobs in one order (by hash) to make deadlocks with other drops unlikely.
    pg = s.get_bind().dialect.name == "postgresql"
    await s.execute(_LOCK_BLOBS_PG if pg else _LOCK_BLOBS, p)
    await s.execute(
        text(
            "UPDATE content_blobs SET refs = refs - (SELECT COUNT(*) FROM snapshot_files f"
            " WHERE f.snapshot_id = :snap AND f.blob_hash = content_blobs.hash)"
            " WHERE hash IN (SELECT blob_hash FROM snapshot_files WHERE snapshot_id = :snap)"
        ),
        p,
    )
    dead = (
        await s.execute(
            text(
                "SELECT hash, base_hash FROM content_blobs WHERE refs <= 0 AND hash IN"
                " (SELECT blob_hash FROM snapshot_files WHERE snapshot_id = :snap)"
            ),
            p,
        )
    ).all()
    for digest, _base in dead:
        await s.execute(
            text("DELETE FROM content_blobs WHERE hash = :h AND refs <= 0"), {"h": digest}
        )
    await blobstore.release(s, [b for _h, b in dead if b])
    await s.execute(text("DELETE FROM snapshot_files WHERE snapshot_id = :snap"), p)
    await s.execute(text("DELETE FROM snapshots WHERE id = :snap"), p)


async def keep_unchanged(
    s: AsyncSession,
    *,
    session_id: int,
    snapshot_id: int,
    version: int,
    defer_index_min: int = 0,
) -> tuple[int, int, bool]:
    """Before restoring a snapshot over a workspace: delete every item whose path the snapshot
    does not hold with the same type, and rewrite in place every file the snapshot holds with
    other contents (``version``, no author; the row, its id and its parent link stay), so that
    ``materialize(..., only_missing=True)`` inserts only what is new: a restore costs what it
    changes, and a changed file costs one row update (with its search-index entry) instead of a
    delete and an insert through every index of the table. A folder kept has every ancestor
    kept; a folder deleted takes its subtree (ON DELETE CASCADE), which the snapshot cannot
    hold either. Contents stored packed are left NULL here; ``fill_packed`` fills them.
    ``defer_index_min``: rewriting at least that many files leaves their search-index refresh
    to after the commit (``search_index.refresh_stale``). Returns the numbers of items deleted
    (their subtrees not counted) and files rewritten, and whether that refresh is left."""
    p = {"sid": session_id, "snap": snapshot_id, "version": version, "now": utcnow()}
    deleted = await s.execute(
        text(
            "DELETE FROM workspace_items WHERE session_id = :sid AND NOT EXISTS ("
            " SELECT 1 FROM snapshot_files f WHERE f.snapshot_id = :snap"
            " AND f.path = workspace_items.full_path AND f.type = workspace_items.type)"
        ),
        p,
    )
    rewritten, deferred = await rewrite_deferring_index(
        s,
        tsql(
            "UPDATE workspace_items SET"
            " content = (SELECT b.data FROM content_blobs b WHERE b.hash = f.blob_hash"
            " AND b.encoding = 'raw'),"
            " content_hash = f.blob_hash, size_bytes = f.size, is_binary = f.is_binary,"
            " version = :version, updated_at = :now, last_modified_by = NULL"
            " FROM snapshot_files f WHERE f.snapshot_id = :snap AND f.type = 'file'"
            " AND workspace_items.session_id = :sid AND workspace_items.full_path = f.path"
            " AND workspace_items.type = 'file'"
            " AND (workspace_items.content_hash IS NULL"
            " OR workspace_items.content_hash <> f.blob_hash)",
            "now",
        ),
        p,
        session_id=session_id,
        version=version,
        defer_min=defer_index_min,
    )
    return rowcount(deleted), rewritten, deferred


async def materialize(
    s: AsyncSession,
    *,
    session_id: int,
    snapshot_id: int,
    version: int,
    only_missing: bool = False,
) -> int:
    """Insert a snapshot's items into the (cleared, or free at its paths) workspace, with parent
    links and contents (``only_missing``: the items whose path is free; see ``keep_unchanged``).
    Returns the number of items inserted."""
    p = {"sid": session_id, "snap": snapshot_id, "version": version, "now": utcnow()}
    free = (
        " AND NOT EXISTS (SELECT 1 FROM workspace_items x WHERE x.session_id = :sid"
        " AND x.full_path = f.path)"
        if only_missing
        else ""
    )
    # Folders first (few), then their parent links; then every file in one statement that
    # looks its parent up (no second write of 10,000 rows).
    folders = await s.execute(
        tsql(
            "INSERT INTO workspace_items (session_id, parent_id, name, type, content, is_binary,"  # noqa: S608 (constant SQL fragments; values are bound)
            " size_bytes, content_hash, full_path, version, created_at, updated_at)"
            " SELECT :sid, NULL, f.name, f.type, NULL, f.is_binary, 0, NULL, f.path, :version,"
            " :now, :now FROM snapshot_files f WHERE f.snapshot_id = :snap AND f.type = 'folder'"
            + free,
            "now",
        ),
        p,
    )
    await s.execute(
        text(
            "UPDATE workspace_items SET parent_id = pw.id FROM snapshot_files f"
            " JOIN workspace_items pw ON pw.session_id = :sid AND pw.full_path = f.parent_path"
            " WHERE f.snapshot_id = :snap AND f.type = 'folder'"
            " AND workspace_items.session_id = :sid AND workspace_items.full_path = f.path"
            " AND workspace_items.parent_id IS NULL"
        ),
        p,
    )
    files = await s.execute(
        tsql(
            "INSERT INTO workspace_items (session_id, parent_id, name, type, content, is_binary,"  # noqa: S608 (constant SQL fragments; values are bound)
            " size_bytes, content_hash, full_path, version, created_at, updated_at)"
            # The content read per inserted row only (not joined for every file of the snapshot).
            " SELECT :sid, pw.id, f.name, f.type, (SELECT b.data FROM content_blobs b"
            " WHERE b.hash = f.blob_hash AND b.encoding = 'raw'),"
            " f.is_binary, f.size, f.blob_hash, f.path, :version, :now, :now"
            " FROM snapshot_files f LEFT JOIN workspace_items pw ON pw.session_id = :sid AND pw.full_path = f.parent_path"
            " WHERE f.snapshot_id = :snap AND f.type = 'file'" + free,
            "now",
        ),
        p,
    )
    await fill_packed(s, session_id=session_id, snapshot_id=snapshot_id)
    return rowcount(folders) + rowcount(files)


async def fill_packed(s: AsyncSession, *, session_id: int, snapshot_id: int) -> None:
    """Fill the files written without content (their blob is stored packed, or missing from
    the store), found in one scan, one distinct content at a time."""
    p = {"sid": session_id}
    packed = (
        await s.execute(
            text(
                "SELECT content_hash, COUNT(*) FROM workspace_items WHERE session_id = :sid"
                " AND type = 'file' AND content IS NULL GROUP BY content_hash"
            ),
            p,
        )
    ).all()
    missing = 0
    for digest, n in packed:
        try:
            content = await blobstore.read(s, digest) if digest is not None else None
        except NotFound:
            content = None
        if content is None:
            missing += int(n)
            continue
        await s.execute(
            text(
                "UPDATE workspace_items SET content = :c WHERE session_id = :sid"
                " AND content_hash = :h AND type = 'file' AND content IS NULL"
            ),
            {"sid": session_id, "h": digest, "c": content},
        )
    if missing:
        raise RuntimeError(f"snapshot {snapshot_id}: {missing} contents missing from the store")


async def copy_items(s: AsyncSession, *, from_id: int, to_id: int) -> int:
    """Copy every item of a workspace into an empty one (a fork)."""
    p = {"old": from_id, "new": to_id, "now": utcnow()}
    inserted = await s.execute(
        tsql(
            "INSERT INTO workspace_items (session_id, parent_id, name, type, content, is_binary,"
            " size_bytes, content_hash, full_path, version, created_at, updated_at)"
            " SELECT :new, NULL, name, type, content, is_binary, size_bytes, content_hash,"
            " full_path, 1, :now, :now FROM workspace_items WHERE session_id = :old",
            "now",
        ),
        p,
    )
    await s.execute(
        text(
            "UPDATE workspace_items SET parent_id = (SELECT np.id FROM workspace_items np"
            " WHERE np.session_id = :new AND np.full_path = (SELECT op.full_path"
            " FROM workspace_items o JOIN workspace_items op ON op.id = o.parent_id"
            " WHERE o.session_id = :old AND o.full_path = workspace_items.full_path))"
            " WHERE session_id = :new"
        ),
        p,
    )
    return int(getattr(inserted, "rowcount", 0) or 0)


# A restored file whose content differs from (or was absent in) the state before the restore:
# only rows the restore wrote (at its version) can be; the others are not joined at all.
_RESTORED_CHANGED = (
    " FROM workspace_items w LEFT JOIN snapshot_files o ON o.snapshot_id = :before"
    " AND o.path = w.full_path AND o.type = 'file'"
    " WHERE w.session_id = :sid AND w.type = 'file' AND w.version = :version"
    " AND (o.blob_hash IS NULL OR o.blob_hash <> w.content_hash)"
)


async def record_restore(
    s: AsyncSession,
    *,
    session_id: int,
    before_id: int,
    author_id: int | None,
    version: int,
    written: bool = True,
    removed: bool = True,
) -> int:
    """File history of a snapshot restore, after ``materialize``: a "restore" version of each
    file whose content it changed or brought back (the rows at ``version``), a deletion version
    of each file it removed (``before_id``: the snapshot of the state before). Set-based: a
    10,000-file restore is three statements; ``written``/``removed`` False: the restore wrote
    no file, deleted no item (those statements are skipped). Returns the number of files
    changed."""
    p = {
        "sid": session_id,
        "before": before_id,
        "author": author_id,
        "now": utcnow(),
        "version": version,
    }
    total = 0
    if written:
        total += await _record_written(s, p)
    if removed:
        total += rowcount(
            await s.execute(
                tsql(
                    "INSERT INTO file_versions (session_id, path, blob_hash, size, is_binary,"
                    " source, author_id, changes, created_at, updated_at)"
                    " SELECT :sid, o.path, NULL, 0, false, 'delete:restore', :author, 1, :now,"
                    " :now FROM snapshot_files o WHERE o.snapshot_id = :before"
                    " AND o.type = 'file' AND NOT EXISTS (SELECT 1 FROM workspace_items w"
                    " WHERE w.session_id = :sid AND w.full_path = o.path AND w.type = 'file')",
                    "now",
                ),
                {k: v for k, v in p.items() if k != "version"},
            )
        )
    return total


# PostgreSQL: the references and the versions in one statement, the changed files joined once
# (a 10,000-file restore joined them twice: ~100-300 ms). The reference update still takes its
# locks on the blob rows within the statement that records the versions.
_PG_RECORD_WRITTEN = tsql(
    "WITH c AS MATERIALIZED (SELECT w.session_id, w.full_path, w.content_hash, w.size_bytes,"  # noqa: S608 (constant SQL fragments; values are bound)
    f" w.is_binary{_RESTORED_CHANGED}),"
    " r AS (UPDATE content_blobs SET refs = refs + g.n FROM (SELECT content_hash AS h,"
    " COUNT(*) AS n FROM c GROUP BY content_hash) g WHERE content_blobs.hash = g.h RETURNING 1)"
    " INSERT INTO file_versions (session_id, path, blob_hash, size, is_binary, source,"
    " author_id, changes, created_at, updated_at)"
    " SELECT session_id, full_path, content_hash, size_bytes, is_binary, 'restore', :author, 1,"
    " :now, :now FROM c",
    "now",
)


async def _record_written(s: AsyncSession, p: dict[str, Any]) -> int:
    """The "restore" versions of the files written at ``p["version"]`` whose content changed."""
    if s.get_bind().dialect.name == "postgresql":
        return rowcount(await s.execute(_PG_RECORD_WRITTEN, p))
    # The versions' references first (every restored content is a blob: the snapshot's).
    await s.execute(
        text(
            "UPDATE content_blobs SET refs = refs + c.n FROM (SELECT w.content_hash AS h,"  # noqa: S608 (constant SQL fragments; values are bound)
            f" COUNT(*) AS n{_RESTORED_CHANGED} GROUP BY w.content_hash) c"
            " WHERE content_blobs.hash = c.h"
        ),
        p,
    )
    written = await s.execute(
        tsql(
            "INSERT INTO file_versions (session_id, path, blob_hash, size, is_binary, source,"
            " author_id, changes, created_at, updated_at)"
            " SELECT w.session_id, w.full_path, w.content_hash, w.size_bytes, w.is_binary,"
            f" 'restore', :author, 1, :now, :now{_RESTORED_CHANGED}",
            "now",
        ),
        p,
    )
    return rowcount(written)
