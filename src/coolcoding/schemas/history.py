"""Request/response models of file history, snapshots, the trash and forks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from coolcoding.schemas.limits import INT32_MAX, SessionName, WorkspacePath

VersionId = Field(ge=1, le=2**62)


class VersionOut(BaseModel):
    id: int
    path: str
    kind: str  # write | delete
    content_hash: str | None
    size: int
    is_binary: bool
    source: str  # editor | terminal | upload | restore | run | previous
    author_id: int | None
    changes: int
    created_at: datetime
    updated_at: datetime


class VersionList(BaseModel):
    versions: list[VersionOut]


class VersionContentOut(VersionOut):
    content: str
    encoding: str  # utf-8 | base64


class DiffOut(BaseModel):
    from_: dict[str, Any] = Field(alias="from")
    to: dict[str, Any]
    binary: bool
    from_content: str | None
    to_content: str | None
    unified: str | None


class RestoreVersionIn(BaseModel):
    to: WorkspacePath | None = None
    base_version: int | None = Field(default=None, ge=0, le=INT32_MAX)


class RestoreVersionOut(BaseModel):
    path: str
    version: int
    restored_from: int
    recreated: bool
    created: bool
    previous_version: int | None


class SnapshotIn(BaseModel):
    name: SessionName = "Snapshot"


class SnapshotOut(BaseModel):
    id: int
    kind: str  # manual | auto | scheduled | trash
    name: str
    root_path: str
    root_type: str  # workspace | folder | file
    file_count: int
    total_bytes: int
    created_at: datetime
    meta: dict[str, Any]


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


class SnapshotFileOut(BaseModel):
    path: str
    name: str
    type: str
    size: int
    content_hash: str | None
    is_binary: bool


class SnapshotFiles(BaseModel):
    items: list[SnapshotFileOut]


class SnapshotRestoreOut(BaseModel):
    restored_items: int
    changed_files: int = Field(
        description="Files whose content the restore changed, added or removed (each got a version)"
    )
    safety_snapshot_id: int
    snapshot_id: int


class TrashRestoreOut(BaseModel):
    path: str
    restored_items: int


class ForkIn(BaseModel):
    name: SessionName | None = None


class StorageOut(BaseModel):
    files_bytes: int
    history_stored_bytes: int
    history_content_bytes: int
    total_stored_bytes: int
