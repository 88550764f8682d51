"""sharing: collaborators with roles, public links, private terminals, who changed what

Revision ID: 0007
Revises: 0006

``session_collaborators``: one row per (session, user): role viewer|editor|admin, status
invited|accepted|declined. ``public_links``: only the SHA-256 of the link's token is stored.
``private_terminals``: terminals the owner keeps to themself. ``workspace_items.last_modified_by``
and ``terminal_commands.user_id``: who saved a file last, who typed a command (nullable: the
sandbox and rows older than this migration have none).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "session_collaborators",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "session_id", ID, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("invited_by", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("session_id", "user_id", name="uq_session_collaborators_member"),
    )
    op.create_table(
        "public_links",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "session_id",
            ID,
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("permission", sa.String(8), nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("view_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "private_terminals",
        sa.Column(
            "session_id",
            ID,
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("terminal_id", sa.String(64), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )
    with op.batch_alter_table("workspace_items") as batch:
        batch.add_column(sa.Column("last_modified_by", ID, nullable=True))
    with op.batch_alter_table("terminal_commands") as batch:
        batch.add_column(sa.Column("user_id", ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("terminal_commands") as batch:
        batch.drop_column("user_id")
    with op.batch_alter_table("workspace_items") as batch:
        batch.drop_column("last_modified_by")
    op.drop_table("private_terminals")
    op.drop_table("public_links")
    op.drop_table("session_collaborators")
