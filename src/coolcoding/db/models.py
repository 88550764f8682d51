"""SQLAlchemy 2 models: the data model of DESIGN.md. The same code runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid as uuid_mod
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """Timestamps are stored as UTC: a naive one (SQLite hands those back) is made aware, an aware
    one is returned as it is."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite hands back naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}


# SQLite stores integers up to 8 bytes but only autoincrements INTEGER PRIMARY KEY.
IdType = BigInteger().with_variant(Integer(), "sqlite")
# Paths compare byte-wise ("C" collation on PostgreSQL; SQLite's default BINARY): subtree queries
# use the range [p + '/', p + '0') which a locale collation would break.
PathType = String(1024).with_variant(String(1024, collation="C"), "postgresql")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    sessions: Mapped[list[CodeSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


# "abc" and "ABC" are one account (migration 0002); lookups compare lower() to use these.
Index("uq_users_username_lower", func.lower(User.username), unique=True)
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class LoginSession(Base):
    """A login: the cookie/bearer token is stored as its SHA-256 so a DB leak reveals no token."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))


class CodeSession(Base):
    """A coding session (workspace): its files, its sandbox and its terminals."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    uuid: Mapped[uuid_mod.UUID] = mapped_column(Uuid, unique=True, default=uuid_mod.uuid4)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(32), default="python")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    network_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    entry_file: Mapped[str | None] = mapped_column(String(1024))
    # stopped | starting | running | error
    sandbox_status: Mapped[str] = mapped_column(String(16), default="stopped")
    sandbox_error: Mapped[str | None] = mapped_column(Text)
    # Opaque runtime state (JupyterHub get_state/load_state): enough to find the sandbox again.
    sandbox_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_accessed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Fork lineage (migration 0004): kept as uuid and name so it survives the origin's deletion.
    forked_from_uuid: Mapped[uuid_mod.UUID | None] = mapped_column(Uuid, nullable=True)
    forked_from_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fork_count: Mapped[int] = mapped_column(Integer, default=0)
    # Who of the members may fork it (migration 0009): members | editors | owner.
    fork_policy: Mapped[str] = mapped_column(
        String(16), default="editors", server_default="editors"
    )

    user: Mapped[User] = relationship(back_populates="sessions")


class WorkspaceItem(Base):
    """A file or folder of a workspace. ``full_path`` is relative, '/'-separated, normalized."""

    __tablename__ = "workspace_items"
    __table_args__ = (
        UniqueConstraint("session_id", "full_path", name="uq_workspace_items_session_path"),
        Index("ix_workspace_items_parent", "session_id", "parent_id"),
        # The self-referencing foreign key's lookups on delete (migration 0004): without it each
        # deleted row scans the table, and deleting or restoring 10,000 items is quadratic.
        Index("ix_workspace_items_parent_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspace_items.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(8))  # file | folder
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    is_binary: Mapped[bool] = mapped_column(Boolean, default=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    full_path: Mapped[str] = mapped_column(PathType)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Who saved it last through the API (migration 0007); None: the sandbox, or older rows. A plain
    # id, not a foreign key: a deleted account leaves the files of the workspaces it touched.
    last_modified_by: Mapped[int | None] = mapped_column(IdType, nullable=True)


class TerminalCommand(Base):
    """One shell command run in a session's terminal, recorded via shell integration."""

    __tablename__ = "terminal_commands"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    output_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    cwd: Mapped[str | None] = mapped_column(String(4096))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    # Who typed it (migration 0007): the user whose input last preceded the command's start.
    user_id: Mapped[int | None] = mapped_column(IdType, nullable=True)


class Execution(Base):
    """A run or judge job: what ran, with which limits, and what the kernel measured."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    uuid: Mapped[uuid_mod.UUID] = mapped_column(Uuid, unique=True, default=uuid_mod.uuid4)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True, nullable=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="judge")  # judge | run
    language: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|finished
    verdict: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[dict[str, Any] | None] = mapped_column(
        JSON
    )  # {"files": {path: text}, "entry": ...}
    stdin: Mapped[bytes | None] = mapped_column(LargeBinary)
    expected_output: Mapped[bytes | None] = mapped_column(LargeBinary)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stdout: Mapped[bytes | None] = mapped_column(LargeBinary)
    stderr: Mapped[bytes | None] = mapped_column(LargeBinary)
    compile_output: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    wall_ms: Mapped[float | None] = mapped_column(Float)
    cpu_ms: Mapped[float | None] = mapped_column(Float)
    memory_kb: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    # The replica whose in-memory queue or runner holds the job (its lease ``replica:<id>``):
    # start-up recovery of another replica leaves it alone while that lease is live.
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    # The database queue (execution/db_queue.py): which try this is, the worker running it and
    # until when its lease holds (a lapsed lease puts the job back in the queue).
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    # Test cases (execution/testcases.py): [{"stdin", "expected_output"}...] and per-case results.
    testcases: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    case_results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    callback_url: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_executions_status_id", "status", "id"),)


class ApiToken(Base):
    """A user's API token (the Judge0-compatible API): only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()


class Lease(Base):
    """A named lease with expiry (``session:<uuid>``, ``replica:<id>``): the once-per-session
    work (sync, idle stop) and start-up recovery are done by whoever holds it, on any backend."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    # Where the holder serves HTTP (informative; for a future proxy to the holder).
    address: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(index=True)


# --- history (migration 0004): services/blobstore.py, history.py, snapshots.py ----------------


class ContentBlob(Base):
    """One distinct content, by its SHA-256, shared by file versions, snapshots and the trash.

    ``encoding``: raw | zlib | delta (zlib of a copy/insert delta against ``base_hash``).
    ``refs`` counts file versions, snapshot files and deltas based on it; at 0 it is deleted in
    the same transaction that dropped the last reference."""

    __tablename__ = "content_blobs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    encoding: Mapped[str] = mapped_column(String(8))
    base_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    refs: Mapped[int] = mapped_column(BigInteger, default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FileVersion(Base):
    """A past or current content of a workspace path (``blob_hash`` None: the file was deleted)."""

    __tablename__ = "file_versions"
    __table_args__ = (Index("ix_file_versions_path", "session_id", "path", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(PathType)
    blob_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    is_binary: Mapped[bool] = mapped_column(Boolean, default=False)
    # editor | terminal | upload | restore | run | delete
    source: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    changes: Mapped[int] = mapped_column(Integer, default=1)  # writes coalesced into it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Snapshot(Base):
    """A workspace (or, for the trash, a deleted subtree or workspace) at a point in time."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_session", "session_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), nullable=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # manual | auto | scheduled | trash
    name: Mapped[str] = mapped_column(String(255))
    root_path: Mapped[str] = mapped_column(PathType, default="")
    root_type: Mapped[str] = mapped_column(String(16), default="workspace")
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SnapshotFile(Base):
    __tablename__ = "snapshot_files"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(PathType, primary_key=True)
    parent_path: Mapped[str | None] = mapped_column(PathType, nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(8))
    blob_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    is_binary: Mapped[bool] = mapped_column(Boolean, default=False)


class UserPreferences(Base):
    """A user's IDE settings (font size, tab size, word wrap, key bindings, theme) as JSON."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SessionTemplate(Base):
    """A starter template (seeded by migration 0005): rows, not code, so more can be added."""

    __tablename__ = "session_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(512), server_default="")
    entry_file: Mapped[str | None] = mapped_column(String(1024))
    # The template a new workspace of this language gets when none is named.
    is_default: Mapped[bool] = mapped_column(Boolean, server_default=false())
    sort_order: Mapped[int] = mapped_column(Integer, server_default="0")


class TemplateFile(Base):
    __tablename__ = "template_files"
    __table_args__ = (UniqueConstraint("template_id", "path", name="uq_template_files_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("session_templates.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(1024))
    content: Mapped[str] = mapped_column(Text)


class SessionCollaborator(Base):
    """A user given access to someone else's session (migration 0007). Only ``accepted`` rows
    grant anything; the owner (``sessions.user_id``) is never a row here."""

    __tablename__ = "session_collaborators"
    __table_args__ = (
        UniqueConstraint("session_id", "user_id", name="uq_session_collaborators_member"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | editor | admin
    status: Mapped[str] = mapped_column(String(16))  # invited | accepted | declined
    invited_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PublicLink(Base):
    """A link that opens a session read-only without an account; only its token's SHA-256 is
    stored, so a database leak reveals no working link."""

    __tablename__ = "public_links"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permission: Mapped[str] = mapped_column(String(8))  # read | fork
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    view_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivateTerminal(Base):
    """A terminal only the session's owner lists and attaches to."""

    __tablename__ = "private_terminals"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    terminal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
