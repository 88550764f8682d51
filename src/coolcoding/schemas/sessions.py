"""Request/response models of coding sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from coolcoding.schemas.limits import LanguageId, SessionName, WorkspacePath


class SessionIn(BaseModel):
    name: SessionName = "Untitled"
    language: LanguageId = "python"
    network_enabled: StrictBool = False
    template: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="A key of GET /api/templates; omitted = the language's default template",
    )


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
    # The caller's role in it (owner | admin | editor | viewer): the IDE's viewer mode.
    role: str = "owner"
