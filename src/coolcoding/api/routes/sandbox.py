"""A session's sandbox, terminals and command history (the WebSockets are in ``api/ws/``).

Viewers list terminals (private ones: the owner only) and the command history; editors start and
stop the sandbox and close terminals; the owner makes a terminal private.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from coolcoding.api.deps import (
    Commands,
    EditorAccess,
    EditorSession,
    OwnerAccess,
    PlatformDep,
    Sandboxes,
    Terminals,
    ViewerAccess,
)
from coolcoding.api.responses import OWNED, WRITE_OWNED, errors, merge
from coolcoding.errors import Conflict, Forbidden, NotFound, RateLimited
from coolcoding.schemas.sandbox import CommandOut, SandboxStateOut, TerminalOut
from coolcoding.terminal import protocol

router = APIRouter(prefix="/api/sessions", tags=["sandbox"])
SHARED = merge(OWNED, errors(Forbidden))
SHARED_WRITE = merge(WRITE_OWNED, errors(Forbidden))


# 409: the per-user cap on running sandboxes; 503: the per-server cap, or the host is out of a
# kernel resource (named in the message).
@router.post(
    "/{session_uuid}/sandbox/start",
    response_model=SandboxStateOut,
    responses=merge(SHARED_WRITE, errors(Conflict, RateLimited)),
)
async def start_sandbox(session: EditorSession, sandboxes: Sandboxes) -> SandboxStateOut:
    await sandboxes.ensure_started(session)
    return SandboxStateOut(status="running")


@router.post("/{session_uuid}/sandbox/stop", response_model=SandboxStateOut, responses=SHARED_WRITE)
async def stop_sandbox(session: EditorSession, sandboxes: Sandboxes) -> SandboxStateOut:
    await sandboxes.stop_anywhere(session, reason="stopped by the user")
    return SandboxStateOut(status="stopped")


@router.get("/{session_uuid}/terminals", response_model=list[TerminalOut], responses=SHARED)
async def list_terminals(
    access: ViewerAccess, terms: Terminals, platform: PlatformDep
) -> list[TerminalOut]:
    """The session's terminals, the same for every member (private ones: the owner's only)."""
    session = await platform.sessions.load(access.ref.session_id)
    private = await platform.access.private_terminals(access.ref.session_id)
    return [
        TerminalOut.model_validate({**t, "private": t["id"] in private})
        for t in await terms.list(session)
        if access.is_owner or t["id"] not in private
    ]


@router.delete("/{session_uuid}/terminals/{terminal_id}", status_code=204, responses=SHARED_WRITE)
async def close_terminal(
    terminal_id: str, access: EditorAccess, terms: Terminals, platform: PlatformDep
) -> Response:
    if not await platform.access.may_use_terminal(access, terminal_id):
        raise NotFound(f"no terminal {terminal_id!r}", code="terminal_not_found")
    await terms.close(await platform.sessions.load(access.ref.session_id), terminal_id)
    return Response(status_code=204)


class PrivateIn(BaseModel):
    private: bool


class PrivateOut(BaseModel):
    terminal_id: str
    private: bool


@router.put(
    "/{session_uuid}/terminals/{terminal_id}/private",
    response_model=PrivateOut,
    responses=SHARED_WRITE,
)
async def set_terminal_private(
    terminal_id: str, body: PrivateIn, access: OwnerAccess, platform: PlatformDep
) -> PrivateOut:
    """Make a terminal the owner's alone (collaborators attached to it are disconnected), or
    share it again. The terminal need not exist yet (an id the owner is about to open)."""
    if not protocol.valid_terminal_id(terminal_id):
        raise NotFound(f"no terminal {terminal_id!r}", code="terminal_not_found")
    await platform.sharing.set_terminal_private(access, terminal_id, body.private)
    return PrivateOut(terminal_id=terminal_id, private=body.private)


@router.get("/{session_uuid}/commands", response_model=list[CommandOut], responses=SHARED)
async def list_commands(
    access: ViewerAccess,
    commands: Commands,
    platform: PlatformDep,
    limit: int = Query(100, ge=1, le=1000),
) -> list[CommandOut]:
    """The command history, newest first, with who typed each command (``user_id``); the
    commands of private terminals are the owner's to see."""
    rows = await commands.recent(access.ref.session_id, limit)
    if not access.is_owner:
        private = await platform.access.private_terminals(access.ref.session_id)
        rows = [r for r in rows if r.terminal_id not in private]
    return [CommandOut.model_validate(c) for c in rows]
