"""Workspace value types and the prebuilt SQL of the workspace service's hot paths."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import Integer, String, Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import BindParameter

from coolcoding.db.models import WorkspaceItem

DEFAULT_FILE = "main.py"
DEFAULT_CONTENT = b'print("Hello from Cool Coding Platform!")\n'


@dataclass(frozen=True)
class WorkspaceRef:
    """Which workspace: the session's primary key and its public uuid."""

    session_id: int
    session_uuid: str


@dataclass(frozen=True)
class ItemInfo:
    path: str
    name: str
    type: Literal["file", "folder"]
    size: int
    version: int
    content_hash: str | None
    is_binary: bool
    updated_at: datetime

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "version": self.version,
            "content_hash": self.content_hash,
            "is_binary": self.is_binary,
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class Change:
    """One applied change, told to listeners after commit."""

    kind: Literal["write", "delete", "mkdir", "move"]
    path: str
    item_type: Literal["file", "folder"] = "file"
    to_path: str | None = None
    version: int | None = None
    size: int | None = None
    source: str = "api"


ChangeSink = Callable[[str, Sequence[Change]], Awaitable[None]]


class Recorder(Protocol):
    """File history's hooks (services/history.py), run inside the write's transaction."""

    @property
    def enabled(self) -> bool: ...

    async def on_write(
        self,
        s: AsyncSession,
        ref: WorkspaceRef,
        path: str,
        old: tuple[str, bytes] | None,
        new_hash: str,
        new: bytes,
        source: str,
        author_id: int | None,
    ) -> None: ...

    async def fast_save(
        self,
        conn: AsyncConnection,
        ref: WorkspaceRef,
        path: str,
        content: bytes,
        digest: str,
        *,
        base_version: int | None,
        base_hash: str | None,
        source: str,
        author_id: int | None,
        max_bytes: int,
    ) -> Any: ...

    async def after_fast_save(self, db: Any, ref: WorkspaceRef, done: Any) -> None: ...

    async def on_delete(
        self, s: AsyncSession, ref: WorkspaceRef, path: str, item_type: str, source: str
    ) -> None: ...

    async def on_create_many(
        self, s: AsyncSession, ref: WorkspaceRef, files: dict[str, tuple[str, bytes]], source: str
    ) -> None: ...

    async def on_move(self, s: AsyncSession, ref: WorkspaceRef, src: str, dst: str) -> None: ...


# Called before a conditional save (one with a base) is checked: (session uuid, path, source). The
# sync uses it to store a program's pending change to that file first, so a save based on the
# version before it gets its 409 rather than a conflict copy.
SaveGuard = Callable[[str, str, str], Awaitable[None]]

# Core columns, not ORM attributes: a statement on the table skips the ORM's per-execution
# compile state (entities, bulk-update bookkeeping), which costs more than the query itself.
_T: Table = WorkspaceItem.__table__  # type: ignore[assignment]

INFO_COLUMNS = (
    _T.c.full_path,
    _T.c.name,
    _T.c.type,
    _T.c.size_bytes,
    _T.c.version,
    _T.c.content_hash,
    _T.c.is_binary,
    _T.c.updated_at,
)


# Hot-path statements are built once: constructing a statement costs more than running it.
_SID: BindParameter[int] = bindparam("sid")
_PATH: BindParameter[str] = bindparam("path")
_AT_PATH = (_T.c.session_id == _SID, _T.c.full_path == _PATH)
READ_STMT = select(*INFO_COLUMNS, _T.c.content).where(*_AT_PATH)
# The JSON names of INFO_COLUMNS, in order (ItemInfo.as_json).
LIST_KEYS = ("path", "name", "type", "size", "version", "content_hash", "is_binary", "updated_at")
LIST_STMT = select(*INFO_COLUMNS).where(_T.c.session_id == _SID).order_by(_T.c.full_path)
INFO_STMT = select(*INFO_COLUMNS).where(*_AT_PATH)
CURRENT_STMT = select(
    _T.c.id,
    _T.c.type,
    _T.c.version,
    _T.c.size_bytes,
    _T.c.content_hash,
).where(*_AT_PATH)
# The general save path with history on: the row locked, with the content it replaces.
CURRENT_FOR_UPDATE_STMT = (
    select(_T.c.id, _T.c.type, _T.c.version, _T.c.size_bytes, _T.c.content_hash, _T.c.content)
    .where(*_AT_PATH)
    .with_for_update()
)
STATS_STMT = select(func.count(_T.c.id), func.coalesce(func.sum(_T.c.size_bytes), 0)).where(
    _T.c.session_id == _SID
)
UPDATE_CONTENT_STMT = (
    update(_T)
    .where(_T.c.id == bindparam("item_id"), _T.c.version == bindparam("old_version"))
    .values(
        content=bindparam("content"),
        size_bytes=bindparam("size"),
        content_hash=bindparam("digest"),
        is_binary=bindparam("binary"),
        version=bindparam("new_version"),
        updated_at=bindparam("now"),
        last_modified_by=bindparam("author"),
    )
    .returning(*INFO_COLUMNS)
)

# A save of an existing file, checked and applied in one statement: the row must be a file of
# this path whose content differs, at the version (or hash) the save was based on, and the
# workspace must stay within its byte quota. No row: the caller takes the general path.
_Q = _T.alias("quota")
_WORKSPACE_BYTES = (
    select(func.coalesce(func.sum(_Q.c.size_bytes), 0)).where(_Q.c.session_id == _SID)
).scalar_subquery()
_BASE_VERSION: BindParameter[int | None] = bindparam("base_version", type_=Integer)
_BASE_HASH: BindParameter[str | None] = bindparam("base_hash", type_=String)
_SIZE: BindParameter[int] = bindparam("size", type_=Integer)
FAST_UPDATE_STMT = (
    update(_T)
    .where(
        *_AT_PATH,
        _T.c.type == "file",
        _T.c.content_hash != bindparam("digest"),
        or_(_BASE_VERSION.is_(None), _T.c.version == _BASE_VERSION),
        or_(_BASE_HASH.is_(None), _T.c.content_hash == _BASE_HASH),
        or_(
            _T.c.size_bytes >= _SIZE,
            _WORKSPACE_BYTES - _T.c.size_bytes + _SIZE <= bindparam("max_bytes", type_=Integer),
        ),
    )
    .values(
        content=bindparam("content"),
        size_bytes=_SIZE,
        content_hash=bindparam("digest"),
        is_binary=bindparam("binary"),
        version=_T.c.version + 1,
        updated_at=bindparam("now"),
    )
    .returning(*INFO_COLUMNS)
)


def item_info(row: Sequence[Any]) -> ItemInfo:
    return ItemInfo(
        path=row[0],
        name=row[1],
        type="folder" if row[2] == "folder" else "file",
        size=row[3],
        version=row[4],
        content_hash=row[5],
        is_binary=row[6],
        updated_at=row[7],
    )


def _iso(dt: datetime) -> str:
    """ISO 8601 in UTC; SQLite returns naive datetimes for values stored as UTC."""
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def looks_binary(content: bytes) -> bool:
    if b"\0" in content[:8192]:
        return True
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
