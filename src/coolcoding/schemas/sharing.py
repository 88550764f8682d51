"""Sharing: members and invitations, public links (docs/API.md, "Sharing")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from coolcoding.schemas.sessions import SessionOut

MemberRole = Literal["viewer", "editor", "admin"]
# Who of a workspace's members may fork it (a public fork link is a grant of its own).
ForkPolicy = Literal["members", "editors", "owner"]


class InviteIn(BaseModel):
    user: str = Field(min_length=1, max_length=254, description="a username or an email")
    role: MemberRole = "viewer"


class RoleIn(BaseModel):
    role: MemberRole


class TransferIn(BaseModel):
    user_id: int = Field(ge=1, le=2**62)


class MemberOut(BaseModel):
    user_id: int
    username: str
    role: str
    status: Literal["invited", "accepted", "declined"]
    invited_by: int | None
    created_at: datetime
    updated_at: datetime


class MembersOut(BaseModel):
    owner_id: int
    owner_username: str
    your_role: str
    members: list[MemberOut]
    fork_policy: ForkPolicy


class ForkPolicyIn(BaseModel):
    fork_policy: ForkPolicy


class ForkPolicyOut(BaseModel):
    fork_policy: ForkPolicy


class SharedSessionOut(BaseModel):
    """A session someone else owns: yours to use with ``role`` (or an invitation to it)."""

    session: SessionOut
    role: str
    status: str
    owner_username: str
    invited_by_username: str | None


class LinkIn(BaseModel):
    permission: Literal["read", "fork"] = "read"
    expires_at: datetime | None = Field(default=None, description="none: the link never expires")


class LinkOut(BaseModel):
    id: int
    permission: str
    expires_at: datetime | None
    revoked_at: datetime | None
    view_count: int
    created_by: int | None
    created_at: datetime


class LinkCreatedOut(LinkOut):
    token: str = Field(description="shown once: only its hash is stored")
    url: str = Field(description="the link's page in the web app (/p/<token>)")


class PublicWorkspaceOut(BaseModel):
    """What a public link shows: the workspace's name and tree (file contents by path)."""

    name: str
    language: str
    entry_file: str | None
    permission: Literal["read", "fork"]
    items: list[dict[str, object]]


class PublicFileOut(BaseModel):
    path: str
    version: int
    content: str
    encoding: Literal["utf-8", "base64"]


class PublicRunOut(BaseModel):
    """The session's latest finished run (``null`` fields: none yet)."""

    status: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    completed_at: datetime | None = None
