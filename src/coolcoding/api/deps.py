"""Dependency aliases for routers: ``PlatformDep``, ``CurrentUser``, ``OwnedSession``, and the
platform's optional parts (``Sandboxes``, ``Terminals``, ``Commands``): 503 ``sandbox_unavailable``
with the runtime's reason when this host cannot run sandboxes."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

from coolcoding.api.clientip import client_ip as client_ip  # re-exported for the routers
from coolcoding.db.models import CodeSession
from coolcoding.errors import NotAuthenticated, Unavailable
from coolcoding.platform import Platform
from coolcoding.services.accounts import Principal
from coolcoding.services.commands import CommandLog
from coolcoding.services.sandboxes import SandboxManager
from coolcoding.services.workspace import WorkspaceRef
from coolcoding.terminal.manager import TerminalManager

T = TypeVar("T")


async def get_platform(request: Request) -> Platform:
    # async: a plain ``def`` dependency would run in the thread pool on every request.
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def sandbox_part(platform: Platform, part: T | None) -> T:
    """``part`` (one of the platform's sandbox parts), or 503 with why sandboxes cannot run."""
    if part is None:
        raise Unavailable(
            platform.sandbox_unavailable or "sandboxes are not available",
            code="sandbox_unavailable",
        )
    return part


async def get_sandboxes(platform: PlatformDep) -> SandboxManager:
    return sandbox_part(platform, platform.sandboxes)


async def get_terminals(platform: PlatformDep) -> TerminalManager:
    return sandbox_part(platform, platform.terminals)


async def get_commands(platform: PlatformDep) -> CommandLog:
    return sandbox_part(platform, platform.commands)


Sandboxes = Annotated[SandboxManager, Depends(get_sandboxes)]
Terminals = Annotated[TerminalManager, Depends(get_terminals)]
Commands = Annotated[CommandLog, Depends(get_commands)]


def token_from(
    headers: dict[str, str] | object, cookies: dict[str, str], cookie_name: str
) -> str | None:
    auth = getattr(headers, "get", lambda _k, _d=None: None)("authorization", None)
    if isinstance(auth, str) and auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return cookies.get(cookie_name) or None


async def get_principal(request: Request, platform: PlatformDep) -> Principal:
    token = token_from(request.headers, request.cookies, platform.settings.session_cookie_name)
    if not token:
        raise NotAuthenticated("not logged in")
    return await platform.accounts.resolve_token(token)


CurrentUser = Annotated[Principal, Depends(get_principal)]


async def get_owned_session(
    session_uuid: str, user: CurrentUser, platform: PlatformDep
) -> CodeSession:
    return await platform.sessions.get_owned(user.user_id, session_uuid)


OwnedSession = Annotated[CodeSession, Depends(get_owned_session)]


async def workspace_ref(
    session_uuid: str, user: CurrentUser, platform: PlatformDep
) -> WorkspaceRef:
    """The workspace of a session the user owns (404 otherwise), without loading the session."""
    return await platform.sessions.owned_ref(user.user_id, session_uuid)


WorkspaceDep = Annotated[WorkspaceRef, Depends(workspace_ref)]
