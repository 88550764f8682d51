"""sharing: who may fork a workspace (``sessions.fork_policy``)

Revision ID: 0009
Revises: 0008

``members`` (any accepted member, viewers too), ``editors`` (editors and admins; the default) or
``owner`` (the owner alone). The owner and admins set it (``PUT .../fork-policy``). A public
``fork`` link is its own grant and is not affected.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(
            sa.Column("fork_policy", sa.String(16), nullable=False, server_default="editors")
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("fork_policy")
