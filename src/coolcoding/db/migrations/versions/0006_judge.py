"""the judge at scale: leased jobs for worker processes, test cases, callbacks, API tokens

Revision ID: 0006
Revises: 0003_leases
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("worker", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("testcases", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("case_results", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
    op.create_index("ix_executions_status_id", "executions", ["status", "id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_index("ix_executions_status_id", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        for name in ("callback_url", "case_results", "testcases", "lease_until", "worker"):
            batch.drop_column(name)
        batch.drop_column("attempt")
