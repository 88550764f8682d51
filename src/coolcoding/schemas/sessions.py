"""Request/response models of coding sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SessionIn(BaseModel):
    name: str = Field(default="Untitled", min_length=1, max_length=255)
    language: str = Field(default="python", max_length=32)
    network_enabled: bool = False


class SessionPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    language: str | None = Field(default=None, max_length=32)
    entry_file: str | None = Field(default=None, max_length=1024)
    network_enabled: bool | None = None


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    uuid: uuid.UUID
    name: str
    language: str
    network_enabled: bool
    entry_file: str | None
    sandbox_status: str
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime
