"""A bulk rewrite of a workspace's files with a set-based search-index refresh (migrations 0011,
0012).

The index (``workspace_search``) is kept by per-row triggers; for one statement that rewrites
thousands of rows (a restore), ``rewrite_deferring_index`` has the update trigger skip the
workspace's rows and then refreshes their entries in one ``DELETE`` and one ``INSERT ... SELECT``,
in the caller's transaction (the guard and the refresh commit or roll back with the rewrite).
When it rewrote at least ``defer_min`` files it only marks them (``workspace_search_stale``, in
the same transaction) and ``refresh_stale`` refreshes them after the commit: search reads every
marked text file as a candidate until then (``services/search.py``), so its answer stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

# The rows the rewrite touched are those at its version (a restore's: higher than any before).
# PostgreSQL: the guard is a transaction-local setting naming the workspace (the trigger of 0011
# compares it); the index holds the lower-cased text.
_PG_DEFER = text("SELECT set_config('coolcoding.search_deferred', :sid, true)")
_PG_UNDEFER = text("SELECT set_config('coolcoding.search_deferred', '', true)")
_PG_DELETE = text(
    "DELETE FROM workspace_search WHERE item_id IN (SELECT id FROM workspace_items"
    " WHERE session_id = :sid AND version = :version)"
)
_PG_INSERT = text(
    "INSERT INTO workspace_search (item_id, session_id, body)"
    " SELECT id, session_id, lower(convert_from(content, 'UTF8')) FROM workspace_items"
    " WHERE session_id = :sid AND version = :version"
    " AND type = 'file' AND NOT is_binary AND content IS NOT NULL"
)
# Through the per-row trigger, which skips a content that is not UTF-8 text.
_PG_REINDEX_EACH = text(
    "UPDATE workspace_items SET content = content WHERE session_id = :sid"
    " AND version = :version AND type = 'file'"
)
# The rows just rewritten (a restore inserts new items after this, through the triggers).
_MARK = text(
    "INSERT INTO workspace_search_stale (item_id, session_id) SELECT id, session_id"
    " FROM workspace_items WHERE session_id = :sid AND version = :version"
    " ON CONFLICT (item_id) DO NOTHING"
)
# The refresh of marked entries, after the rewrite's commit. PostgreSQL first locks the session
# row (a restore, which locks it FOR UPDATE, waits; inserts of items, which key-share it, do not)
# and the marked rows (a save of one waits, or is already in).
_PG_LOCK_SESSION = text("SELECT id FROM sessions WHERE id = :sid FOR NO KEY UPDATE")
_PG_LOCK_ITEMS = text(
    "SELECT id FROM workspace_items WHERE id IN (SELECT item_id FROM workspace_search_stale"
    " WHERE session_id = :sid) ORDER BY id FOR NO KEY UPDATE"
)
_STALE_IDS = "SELECT item_id FROM workspace_search_stale WHERE session_id = :sid"
_PG_DELETE_STALE = text(f"DELETE FROM workspace_search WHERE item_id IN ({_STALE_IDS})")  # noqa: S608
_PG_INSERT_STALE = text(
    "INSERT INTO workspace_search (item_id, session_id, body)"  # noqa: S608 (constants)
    " SELECT id, session_id, lower(convert_from(content, 'UTF8')) FROM workspace_items"
    f" WHERE id IN ({_STALE_IDS}) AND type = 'file' AND NOT is_binary AND content IS NOT NULL"
)
_PG_REINDEX_STALE = text(
    f"UPDATE workspace_items SET content = content WHERE id IN ({_STALE_IDS})"  # noqa: S608
    " AND type = 'file'"
)
_SQLITE_DELETE_STALE = text(f"DELETE FROM workspace_search WHERE rowid IN ({_STALE_IDS})")  # noqa: S608
_SQLITE_INSERT_STALE = text(
    "INSERT INTO workspace_search (rowid, body, session_id)"  # noqa: S608 (constants)
    " SELECT id, CAST(content AS TEXT), session_id FROM workspace_items"
    f" WHERE id IN ({_STALE_IDS}) AND type = 'file' AND NOT is_binary AND content IS NOT NULL"
)
_UNMARK = text("DELETE FROM workspace_search_stale WHERE session_id = :sid")
STALE_SESSIONS = text("SELECT DISTINCT session_id FROM workspace_search_stale")
# SQLite: the guard is a row of workspace_search_deferred, in the writer's transaction only.
_SQLITE_DEFER = text("INSERT INTO workspace_search_deferred (session_id) VALUES (:sid)")
_SQLITE_UNDEFER = text("DELETE FROM workspace_search_deferred WHERE session_id = :sid")
_SQLITE_DELETE = text(
    "DELETE FROM workspace_search WHERE rowid IN (SELECT id FROM workspace_items"
    " WHERE session_id = :sid AND version = :version)"
)
_SQLITE_INSERT = text(
    "INSERT INTO workspace_search (rowid, body, session_id)"
    " SELECT id, CAST(content AS TEXT), session_id FROM workspace_items"
    " WHERE session_id = :sid AND version = :version"
    " AND type = 'file' AND NOT is_binary AND content IS NOT NULL"
)


async def rewrite_deferring_index(
    s: AsyncSession,
    statement: TextClause,
    params: dict[str, Any],
    *,
    session_id: int,
    version: int,
    defer_min: int = 0,
) -> tuple[int, bool]:
    """Run ``statement`` (an ``UPDATE`` of ``session_id``'s items that sets ``version``, a
    version no row of the workspace had) without the per-row index trigger, then refresh the
    index entries of every row at ``version``, or, when it rewrote at least ``defer_min`` rows
    (0: never), mark them for ``refresh_stale`` after the commit. Returns the number of rows
    rewritten and whether their refresh is left to ``refresh_stale``."""
    p = {"sid": session_id, "version": version}
    postgres = s.get_bind().dialect.name == "postgresql"
    if postgres:
        await s.execute(_PG_DEFER, {"sid": str(session_id)})
    else:
        await s.execute(_SQLITE_DEFER, p)
    rewritten = rowcount(await s.execute(statement, params))
    await s.execute(_PG_UNDEFER if postgres else _SQLITE_UNDEFER, p)
    if not rewritten:
        return 0, False
    if 0 < defer_min <= rewritten:
        await s.execute(_MARK, p)
        return rewritten, True
    if not postgres:
        await s.execute(_SQLITE_DELETE, p)
        await s.execute(_SQLITE_INSERT, p)
        return rewritten, False
    await s.execute(_PG_DELETE, p)
    await _pg_insert_set(s, _PG_INSERT, _PG_REINDEX_EACH, p)
    return rewritten, False


async def _pg_insert_set(
    s: AsyncSession, insert: TextClause, each: TextClause, p: Mapping[str, object]
) -> None:
    """PostgreSQL: the set's index entries in one statement, under one savepoint instead of
    the trigger's subtransaction per row; on a content that is not valid UTF-8 (a NUL past the
    sniffed prefix), ``each`` indexes the others row by row and skips that one, as a save."""
    try:
        async with s.begin_nested():
            await s.execute(insert, p)
    except DBAPIError:
        await s.execute(each, p)


async def refresh_stale(s: AsyncSession, session_id: int) -> None:
    """In the caller's transaction: refresh the index entries marked stale in ``session_id``
    from the files' current contents (a file saved since is refreshed again, to the same text)
    and drop the marks. Idempotent: a crash before the commit leaves the marks for a retry."""
    p = {"sid": session_id}
    if s.get_bind().dialect.name != "postgresql":
        # The first statement writes: SQLite's write lock is held from here to the commit.
        await s.execute(_SQLITE_DELETE_STALE, p)
        await s.execute(_SQLITE_INSERT_STALE, p)
        await s.execute(_UNMARK, p)
        return
    await s.execute(_PG_LOCK_SESSION, p)
    await s.execute(_PG_LOCK_ITEMS, p)
    await s.execute(_PG_DELETE_STALE, p)
    await _pg_insert_set(s, _PG_INSERT_STALE, _PG_REINDEX_STALE, p)
    await s.execute(_UNMARK, p)


def rowcount(result: object) -> int:
    """The rows a statement changed (0 when the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)
