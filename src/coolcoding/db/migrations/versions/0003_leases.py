"""leases with expiry (session and replica leases) and executions.owner

Revision ID: 0003_leases
Revises: 0002_users_nocase
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_leases"
down_revision = "0002_users_nocase"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_leases_expires_at", "leases", ["expires_at"])
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_executions_owner", "executions", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_executions_owner", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("owner")
    op.drop_index("ix_leases_expires_at", table_name="leases")
    op.drop_table("leases")
