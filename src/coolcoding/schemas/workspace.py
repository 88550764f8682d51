"""Request/response models of workspace files."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from coolcoding.schemas.limits import INT32_MAX, WorkspacePath

BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


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
    # With ``encoding: base64`` the content is standard padded base64: stated to JSON Schema by
    # the if/then below, enforced by the route (400 ``invalid_content``).
    model_config = {
        "json_schema_extra": {
            "if": {"properties": {"encoding": {"const": "base64"}}, "required": ["encoding"]},
            "then": {"properties": {"content": {"pattern": BASE64_PATTERN}}},
        }
    }

    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    base_version: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Version the edit is based on; 0 = create only; omitted = overwrite",
    )


class MoveIn(BaseModel):
    from_: WorkspacePath = Field(alias="from")
    to: WorkspacePath


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
