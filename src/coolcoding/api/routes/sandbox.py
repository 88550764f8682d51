"""A session's sandbox, terminals and command history (the WebSockets are in ``api/ws/``)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from coolcoding.api.deps import Commands, OwnedSession, Sandboxes, Terminals
from coolcoding.api.responses import OWNED, WRITE_OWNED, errors, merge
from coolcoding.errors import Conflict, RateLimited
from coolcoding.schemas.sandbox import CommandOut, SandboxStateOut, TerminalOut

router = APIRouter(prefix="/api/sessions", tags=["sandbox"])


# 409: the per-user cap on running sandboxes; 503: the per-server cap, or the host is out of a
# kernel resource (named in the message).
@router.post(
    "/{session_uuid}/sandbox/start",
    response_model=SandboxStateOut,
    responses=merge(WRITE_OWNED, errors(Conflict, RateLimited)),
)
async def start_sandbox(session: OwnedSession, sandboxes: Sandboxes) -> SandboxStateOut:
    await sandboxes.ensure_started(session)
    return SandboxStateOut(status="running")


@router.post("/{session_uuid}/sandbox/stop", response_model=SandboxStateOut, responses=WRITE_OWNED)
async def stop_sandbox(session: OwnedSession, sandboxes: Sandboxes) -> SandboxStateOut:
    await sandboxes.stop_anywhere(session, reason="stopped by the user")
    return SandboxStateOut(status="stopped")


@router.get("/{session_uuid}/terminals", response_model=list[TerminalOut], responses=OWNED)
async def list_terminals(session: OwnedSession, terms: Terminals) -> list[TerminalOut]:
    return [TerminalOut.model_validate(t) for t in await terms.list(session)]


@router.delete("/{session_uuid}/terminals/{terminal_id}", status_code=204, responses=WRITE_OWNED)
async def close_terminal(terminal_id: str, session: OwnedSession, terms: Terminals) -> Response:
    await terms.close(session, terminal_id)
    return Response(status_code=204)


@router.get("/{session_uuid}/commands", response_model=list[CommandOut], responses=OWNED)
async def list_commands(
    session: OwnedSession, commands: Commands, limit: int = Query(100, ge=1, le=1000)
) -> list[CommandOut]:
    return [CommandOut.model_validate(c) for c in await commands.recent(session.id, limit)]
