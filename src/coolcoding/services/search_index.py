"""A bulk rewrite of a workspace's files with a set-based search-index refresh (migration 0011).

The index (``workspace_search``) is kept by per-row triggers; for one statement that rewrites
thousands of rows (a restore), ``rewrite_deferring_index`` has the update trigger skip the
workspace's rows and then refreshes their entries in one ``DELETE`` and one ``INSERT ... SELECT``,
in the caller's transaction: a reader never sees the index out of step (the guard and the
refresh commit or roll back with the rewrite).
"""

from __future__ import annotations

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
) -> int:
    """Run ``statement`` (an ``UPDATE`` of ``session_id``'s items that sets ``version``, a
    version no row of the workspace had) without the per-row index trigger, then refresh the
    index entries of every row at ``version``. Returns the number of rows rewritten (none: no
    refresh)."""
    p = {"sid": session_id, "version": version}
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(_PG_DEFER, {"sid": str(session_id)})
        rewritten = rowcount(await s.execute(statement, params))
        await s.execute(_PG_UNDEFER)
        if not rewritten:
            return 0
        await s.execute(_PG_DELETE, p)
        try:
            # One savepoint for the set instead of the trigger's subtransaction per row.
            async with s.begin_nested():
                await s.execute(_PG_INSERT, p)
        except DBAPIError:
            # A content that is not valid UTF-8 (a NUL past the sniffed prefix): the per-row
            # trigger indexes the others and skips that one, as for a save.
            await s.execute(_PG_REINDEX_EACH, p)
        return rewritten
    await s.execute(_SQLITE_DEFER, p)
    rewritten = rowcount(await s.execute(statement, params))
    await s.execute(_SQLITE_UNDEFER, p)
    if rewritten:
        await s.execute(_SQLITE_DELETE, p)
        await s.execute(_SQLITE_INSERT, p)
    return rewritten


def rowcount(result: object) -> int:
    """The rows a statement changed (0 when the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)
