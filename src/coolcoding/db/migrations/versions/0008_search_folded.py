"""Search: PostgreSQL's index holds the lower-cased text, stored uncompressed

Revision ID: 0008
Revises: 0007

Search rechecked its trigram candidates with ``body ILIKE``, which lower-cases every candidate's
whole text per query (150 ms for 10,000 files); with the folded text stored, the recheck is a plain
``LIKE`` (about 6x cheaper), and ``STORAGE EXTERNAL`` spares the decompression of bodies over 2 KB.
Results are read from ``workspace_items.content``, so the index no longer needs the original
text. SQLite's FTS5 trigram table folds case itself: unchanged.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TRIGGER = """
CREATE OR REPLACE FUNCTION workspace_search_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM workspace_search WHERE item_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.type = 'file' AND NOT NEW.is_binary
            AND NEW.content IS NOT NULL THEN
        BEGIN
            INSERT INTO workspace_search (item_id, session_id, body)
            VALUES (NEW.id, NEW.session_id, {body});
        EXCEPTION WHEN others THEN
            -- not valid UTF-8 text (e.g. a NUL after the sniffed prefix): not searchable
            NULL;
        END;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(TRIGGER.format(body="lower(convert_from(NEW.content, 'UTF8'))"))
    op.execute("ALTER TABLE workspace_search ALTER COLUMN body SET STORAGE EXTERNAL")
    op.execute("UPDATE workspace_search SET body = lower(body)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(TRIGGER.format(body="convert_from(NEW.content, 'UTF8')"))
    op.execute("ALTER TABLE workspace_search ALTER COLUMN body SET STORAGE EXTENDED")
    op.execute(
        "UPDATE workspace_search s SET body = convert_from(i.content, 'UTF8') "
        "FROM workspace_items i WHERE i.id = s.item_id"
    )
