"""Search: a restore refreshes the index of its rewritten files in two set-based statements

Revision ID: 0011
Revises: 0010

A restore rewrites up to every file of a workspace in one ``UPDATE``; the per-row triggers of
0005/0008 then ran once per row (PostgreSQL: a plpgsql call with a ``BEGIN ... EXCEPTION``
subtransaction each). While a transaction defers the index for a workspace, the update triggers
skip that workspace's rows, and the restore refreshes their entries itself
(``services/search_index.py``: one ``DELETE`` and one ``INSERT ... SELECT``) before it ends the
deferral, in the same transaction.

- SQLite: the guard is a row of ``workspace_search_deferred`` (session id) inserted and deleted in the
  restore's write transaction, so no other connection ever sees it, and a crash rolls it back.
- PostgreSQL: the guard is a transaction-local setting (``set_config(..., true)``) naming the
  session; it ends with the transaction at the latest.
Inserts and deletes still go through the triggers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PG_TRIGGER = """
CREATE OR REPLACE FUNCTION workspace_search_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('coolcoding.search_deferred', true)
            = NEW.session_id::text THEN
        RETURN NULL;  -- a restore refreshes these rows itself (services/search_index.py)
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM workspace_search WHERE item_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.type = 'file' AND NOT NEW.is_binary
            AND NEW.content IS NOT NULL THEN
        BEGIN
            INSERT INTO workspace_search (item_id, session_id, body)
            VALUES (NEW.id, NEW.session_id, lower(convert_from(NEW.content, 'UTF8')));
        EXCEPTION WHEN others THEN
            -- not valid UTF-8 text (e.g. a NUL after the sniffed prefix): not searchable
            NULL;
        END;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

# 0008's function, restored by the downgrade.
PG_TRIGGER_0008 = PG_TRIGGER.replace(
    """    IF TG_OP = 'UPDATE' AND current_setting('coolcoding.search_deferred', true)
            = NEW.session_id::text THEN
        RETURN NULL;  -- a restore refreshes these rows itself (services/search_index.py)
    END IF;
""",
    "",
)

SQLITE_INSERT = (
    "INSERT INTO workspace_search (rowid, body, session_id) "
    "SELECT NEW.id, CAST(NEW.content AS TEXT), NEW.session_id "
    "WHERE NEW.type = 'file' AND NOT NEW.is_binary AND NEW.content IS NOT NULL;"
)


SQLITE_UPDATE_TRIGGER = (
    "CREATE TRIGGER workspace_search_upd AFTER UPDATE OF content, is_binary, type "  # noqa: S608 (constant SQL fragments)
    "ON workspace_items{when} BEGIN DELETE FROM workspace_search WHERE rowid = OLD.id; "
    + SQLITE_INSERT
    + " END"
)
SQLITE_GUARD = (
    " WHEN NOT EXISTS (SELECT 1 FROM workspace_search_deferred d"
    " WHERE d.session_id = NEW.session_id)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TRIGGER)
        return
    op.create_table(
        "workspace_search_deferred",
        sa.Column("session_id", sa.Integer, primary_key=True),
    )
    op.execute("DROP TRIGGER IF EXISTS workspace_search_upd")
    op.execute(SQLITE_UPDATE_TRIGGER.format(when=SQLITE_GUARD))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TRIGGER_0008)
        return
    op.execute("DROP TRIGGER IF EXISTS workspace_search_upd")
    op.execute(SQLITE_UPDATE_TRIGGER.format(when=""))
    op.drop_table("workspace_search_deferred")
