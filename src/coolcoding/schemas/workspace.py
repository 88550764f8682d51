"""Request/response models of workspace files."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ItemOut(BaseModel):
    path: str
    name: str
    type: Literal["file", "folder"]
    size: int
    version: int
    content_hash: str | None
    is_binary: bool
    updated_at: datetime


class ItemList(BaseModel):
    items: list[ItemOut]


class FileOut(ItemOut):
    content: str
    encoding: Literal["utf-8", "base64"]


class SaveIn(BaseModel):
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    base_version: int | None = Field(
        default=None,
        ge=0,
        description="Version the edit is based on; 0 = create only; omitted = overwrite",
    )


class MoveIn(BaseModel):
    from_: str = Field(alias="from", max_length=4096)
    to: str = Field(max_length=4096)


class StatusOut(BaseModel):
    initialized: bool
    item_count: int
    total_bytes: int
    sandbox_status: str
    disk_used_bytes: int | None = Field(
        default=None,
        description="Bytes the running sandbox's workspace uses on disk (null when not running)",
    )
    disk_limit_bytes: int | None = Field(
        default=None,
        description="Bytes it may use in all: beyond, writes fail with ENOSPC (null when not "
        "running)",
    )


class EnsureDefaultOut(BaseModel):
    created: bool
