"""Search: index entries a large restore left to refresh after its commit

Revision ID: 0012
Revises: 0011

A restore that rewrites many files (``search_defer_refresh_min_files``) no longer refreshes their
index entries inside its transaction: it marks them here (``item_id``, in the same transaction as
the rewrite) and a task refreshes them right after the commit (``services/search_index.py``). Until
then search reads every marked text file as a candidate (like the text files with a NUL of 0010),
so its answer stays exact. The marks are rows: a crash before the refresh leaves them, and the next
start of the snapshot service refreshes what is marked.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_search_stale",
        # No foreign key: a mark of an item deleted since is dropped by the refresh (and only
        # ever makes search read a file it would find anyway).
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("session_id", sa.BigInteger, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("workspace_search_stale")
