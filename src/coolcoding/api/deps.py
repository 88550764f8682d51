"""Dependency aliases for routers: ``PlatformDep``, ``CurrentUser``, the role-checked session
aliases (``ViewerWorkspace``, ``EditorSession``, ``AdminAccess``...), and the
platform's optional parts (``Sandboxes``, ``Terminals``, ``Commands``): 503 ``sandbox_unavailable``
with the runtime's reason when this host cannot run sandboxes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from coolcoding.api.clientip import client_ip as client_ip  # re-exported for the routers
from coolcoding.db.models import CodeSession
from coolcoding.errors import NotAuthenticated, Unavailable
from coolcoding.platform import Platform
from coolcoding.services.access import Access, Role
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


# --- the access check of every workspace route (services/access.py) ---------------------------
# ``ACCESS_POLICY`` maps each of these dependencies to the role it requires: the route test
# (tests/integration/test_share_policy.py) walks every route's dependencies and fails when a
# workspace route declares none.
ACCESS_POLICY: dict[Callable[..., Any], Role] = {}


def _access_dep(need: Role) -> Callable[..., Awaitable[Access]]:
    async def dep(session_uuid: str, user: CurrentUser, platform: PlatformDep) -> Access:
        return await platform.access.require(user.user_id, session_uuid, need)

    dep.__name__ = f"require_{need.label}"
    ACCESS_POLICY[dep] = need
    return dep


def _session_dep(need: Role) -> Callable[..., Awaitable[CodeSession]]:
    async def dep(session_uuid: str, user: CurrentUser, platform: PlatformDep) -> CodeSession:
        access = await platform.access.require(user.user_id, session_uuid, need)
        return await platform.sessions.load(access.ref.session_id)

    dep.__name__ = f"{need.label}_session"
    ACCESS_POLICY[dep] = need
    return dep


def _ref_dep(need: Role) -> Callable[..., Awaitable[WorkspaceRef]]:
    async def dep(session_uuid: str, user: CurrentUser, platform: PlatformDep) -> WorkspaceRef:
        return (await platform.access.require(user.user_id, session_uuid, need)).ref

    dep.__name__ = f"{need.label}_workspace"
    ACCESS_POLICY[dep] = need
    return dep


ViewerAccess = Annotated[Access, Depends(_access_dep(Role.VIEWER))]
EditorAccess = Annotated[Access, Depends(_access_dep(Role.EDITOR))]
AdminAccess = Annotated[Access, Depends(_access_dep(Role.ADMIN))]
OwnerAccess = Annotated[Access, Depends(_access_dep(Role.OWNER))]
ViewerSession = Annotated[CodeSession, Depends(_session_dep(Role.VIEWER))]
EditorSession = Annotated[CodeSession, Depends(_session_dep(Role.EDITOR))]
ViewerWorkspace = Annotated[WorkspaceRef, Depends(_ref_dep(Role.VIEWER))]
EditorWorkspace = Annotated[WorkspaceRef, Depends(_ref_dep(Role.EDITOR))]
AdminWorkspace = Annotated[WorkspaceRef, Depends(_ref_dep(Role.ADMIN))]
# The names of before sharing: the owner only.
OwnedSession = Annotated[CodeSession, Depends(_session_dep(Role.OWNER))]
WorkspaceDep = Annotated[WorkspaceRef, Depends(_ref_dep(Role.OWNER))]
