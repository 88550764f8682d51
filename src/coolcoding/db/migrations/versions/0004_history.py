"""file history: content blobs, file versions, snapshots (and the trash), fork lineage

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_leases"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PATH = sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql")
NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "content_blobs",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("encoding", sa.String(8), nullable=False),
        sa.Column("base_hash", sa.String(64), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=False),
        sa.Column("refs", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
    )
    op.create_table(
        "file_versions",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "session_id", ID, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("path", PATH, nullable=False),
        sa.Column("blob_hash", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("is_binary", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("author_id", ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
    )
    op.create_index("ix_file_versions_path", "file_versions", ["session_id", "path", "id"])
    op.create_table(
        "snapshots",
        sa.Column("id", ID, primary_key=True),
        sa.Column("session_id", ID, sa.ForeignKey("sessions.id", ondelete="SET NULL")),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("root_path", PATH, nullable=False),
        sa.Column("root_type", sa.String(16), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
    )
    op.create_index("ix_snapshots_session", "snapshots", ["session_id", "kind", "id"])
    op.create_index("ix_snapshots_user_id", "snapshots", ["user_id"])
    op.create_table(
        "snapshot_files",
        sa.Column(
            "snapshot_id",
            ID,
            sa.ForeignKey("snapshots.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", PATH, primary_key=True),
        sa.Column("parent_path", PATH, nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("blob_hash", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("is_binary", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_workspace_items_parent_id", "workspace_items", ["parent_id"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("forked_from_uuid", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("forked_from_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("fork_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("fork_count")
        batch.drop_column("forked_from_name")
        batch.drop_column("forked_from_uuid")
    op.drop_index("ix_workspace_items_parent_id", table_name="workspace_items")
    op.drop_table("snapshot_files")
    op.drop_index("ix_snapshots_user_id", table_name="snapshots")
    op.drop_index("ix_snapshots_session", table_name="snapshots")
    op.drop_table("snapshots")
    op.drop_index("ix_file_versions_path", table_name="file_versions")
    op.drop_table("file_versions")
    op.drop_table("content_blobs")
