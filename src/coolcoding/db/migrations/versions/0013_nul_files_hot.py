"""Search: the text files with a NUL listed through a generated flag (PostgreSQL), so that a
content update can be a HOT update

Revision ID: 0013
Revises: 0012

Migration 0010's partial index of the text files with a NUL named ``content``, ``is_binary`` and
``size_bytes`` in its predicate. PostgreSQL updates a row in place on its page (HOT: no new entry
in any index of the table) only when no column an index names, predicates included, changes, so
every content update (a save, the 9,900 rows of a restore) wrote a new entry into each of the
table's four indexes. PostgreSQL now computes the same predicate into a stored generated column
``search_nul`` (false, or NULL without content, for every file but the rare text file with a NUL
after 8 KiB) and the partial index names only that column: it does not change when a content does,
and the update can stay on its page, if the page has room for the new version: the table keeps
half of each page free (``fillfactor`` 50), since a restore rewrites every row of a page (measured
on a 10,000-file restore changing every file: fillfactor 90 left 33% of the updates HOT, 70 80%,
50 all; the heap of small-file rows is twice as large, contents over ~2 KB are stored out of line
and unaffected). The column is the database's own (not a model column): writers never
set it. SQLite has no in-place update to win: its index is unchanged.

Adding a stored generated column rewrites the table (once, at upgrade).
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The predicate of 0010, word for word; services/search.py PG_NUL_FILES reads the column.
PG_NUL = (
    "type = 'file' AND NOT is_binary AND size_bytes > 8192 "
    "AND position('\\x00'::bytea in content) > 0"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS workspace_search_nul_files")
    op.execute("ALTER TABLE workspace_items SET (fillfactor = 50)")
    op.execute(
        f"ALTER TABLE workspace_items ADD COLUMN search_nul boolean GENERATED ALWAYS AS ({PG_NUL}) STORED"
    )
    op.execute(
        "CREATE INDEX workspace_search_nul_files ON workspace_items (session_id) WHERE search_nul"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS workspace_search_nul_files")
    op.execute("ALTER TABLE workspace_items DROP COLUMN IF EXISTS search_nul")
    op.execute("ALTER TABLE workspace_items RESET (fillfactor)")
    op.execute(
        f"CREATE INDEX workspace_search_nul_files ON workspace_items (session_id) WHERE {PG_NUL}"
    )
