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

_GUARD = "coolcoding.search_deferred"
# The rows the rewrite touched: it gives them the restore's version, higher than any before.
_CHANGED = "SELECT id FROM workspace_items WHERE session_id = :sid AND version = :version"
_INDEXABLE = (
    " FROM workspace_items WHERE session_id = :sid AND version = :version"
    " AND type = 'file' AND NOT is_binary AND content IS NOT NULL"
)


async def rewrite_deferring_index(
    s: AsyncSession,
    statement: TextClause,
    params: dict[str, Any],
    *,
    session_id: int,
    version: int,
) -> None:
    """Run ``statement`` (an ``UPDATE`` of ``session_id``'s items that sets ``version``, a
    version no row of the workspace had) without the per-row index trigger, then refresh the
    index entries of every row at ``version``."""
    p = {"sid": session_id, "version": version}
    if s.bind.dialect.name == "postgresql":
        await s.execute(text(f"SELECT set_config('{_GUARD}', :v, true)"), {"v": str(session_id)})
        await s.execute(statement, params)
        await s.execute(text(f"SELECT set_config('{_GUARD}', '', true)"))
        await s.execute(text(f"DELETE FROM workspace_search WHERE item_id IN ({_CHANGED})"), p)
        try:
            # One savepoint for the set instead of the trigger's subtransaction per row.
            async with s.begin_nested():
                await s.execute(
                    text(
                        "INSERT INTO workspace_search (item_id, session_id, body)"  # noqa: S608 (constant SQL fragments; values are bound)
                        " SELECT id, session_id, lower(convert_from(content, 'UTF8'))" + _INDEXABLE
                    ),
                    p,
                )
        except DBAPIError:
            # A content that is not valid UTF-8 (a NUL past the sniffed prefix): let the per-row
            # trigger index the others and skip that one, as for a save.
            await s.execute(
                text(
                    "UPDATE workspace_items SET content = content WHERE session_id = :sid"
                    " AND version = :version AND type = 'file'"
                ),
                p,
            )
        return
    await s.execute(text("INSERT INTO workspace_search_deferred (session_id) VALUES (:sid)"), p)
    await s.execute(statement, params)
    await s.execute(text("DELETE FROM workspace_search_deferred WHERE session_id = :sid"), p)
    await s.execute(text(f"DELETE FROM workspace_search WHERE rowid IN ({_CHANGED})"), p)
    await s.execute(
        text(
            "INSERT INTO workspace_search (rowid, body, session_id)"  # noqa: S608 (constant SQL fragments; values are bound)
            " SELECT id, CAST(content AS TEXT), session_id" + _INDEXABLE
        ),
        p,
    )
