"""Search: an index for one- and two-letter runs (PostgreSQL), and one for text files with a NUL

Revision ID: 0010
Revises: 0009

A query such as ``qz`` has no trigram, so the trigram index cannot narrow it and every body was
scanned (PostgreSQL: ~100 ms to detoast 10,000 bodies). PostgreSQL gets a second pg_trgm index on
an expression: the folded text with every character doubled (``abc`` -> ``aabbcc``), in which a
two-character run ``qz`` is the trigram-bearing ``qqzz`` (exact: a match at an odd offset would
need two equal neighbours from different pairs). It is an expression index, so it is built from
the existing rows (backfill) and kept up to date by PostgreSQL itself. SQLite scans the text with
``LIKE`` in one statement (~15-20 ms for 10,000 files): no index.

A text file may hold a NUL after the 8,192 bytes ``looks_binary`` sniffs: PostgreSQL's index has
no row for it (``convert_from`` refuses a NUL) and SQLite's FTS5/``LIKE`` stop at it, so the index
path missed such files. A partial index on ``workspace_items`` lists them per session (tiny: only
those files), and search always reads them.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PG_DOUBLED = (
    "CREATE FUNCTION search_doubled(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT "
    "PARALLEL SAFE AS $$ SELECT regexp_replace(t, '(.)', '\\1\\1', 'g') $$"
)
# The same predicate must be written in the queries (services/search.py NUL_FILES).
PG_NUL = (
    "type = 'file' AND NOT is_binary AND size_bytes > 8192 "
    "AND position('\\x00'::bytea in content) > 0"
)
SQLITE_NUL = "type = 'file' AND NOT is_binary AND size_bytes > 8192 AND instr(content, X'00') > 0"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_DOUBLED)
        op.execute(
            "CREATE INDEX workspace_search_doubled ON workspace_search "
            "USING gin (search_doubled(body) gin_trgm_ops)"
        )
        op.execute(
            f"CREATE INDEX workspace_search_nul_files ON workspace_items (session_id) WHERE {PG_NUL}"
        )
    else:
        op.execute(
            "CREATE INDEX workspace_search_nul_files ON workspace_items (session_id) "
            f"WHERE {SQLITE_NUL}"
        )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS workspace_search_nul_files")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS workspace_search_doubled")
        op.execute("DROP FUNCTION IF EXISTS search_doubled(text)")
