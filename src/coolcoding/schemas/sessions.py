"""Request/response models of coding sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StrictBool

from coolcoding.schemas.limits import LanguageId, SessionName, WorkspacePath


class SessionIn(BaseModel):
    name: SessionName = "Untitled"
    language: LanguageId = "python"
    network_enabled: StrictBool = False


class SessionPatch(BaseModel):
    name: SessionName | None = None
    language: LanguageId | None = None
    entry_file: WorkspacePath | None = None
    network_enabled: StrictBool | None = None


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
    forked_from_uuid: UUID | None = None
    forked_from_name: str | None = None
    fork_count: int = 0
