"""The terminal WebSocket adapter: authorize, attach to the agent's terminal, pump frames both ways.

``/api/sessions/{uuid}/terminals/{terminal_id}`` and the seed's ``/ws?session_uuid=&terminal_id=``.
Protocol in ``terminal/protocol.py``; errors become close codes via ``api/errors.ws_close_code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from coolcoding.api.deps import sandbox_part
from coolcoding.api.errors import ws_close_code
from coolcoding.api.ws.auth import authorize, close_quietly, platform_of, revocable
from coolcoding.errors import DomainError, NotFound
from coolcoding.services.access import Role
from coolcoding.terminal import protocol
from coolcoding.terminal.manager import TerminalManager
from coolcoding.terminal.session import TerminalAttachment

log = logging.getLogger(__name__)
router = APIRouter()


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


@router.websocket("/api/sessions/{session_uuid}/terminals/{terminal_id}")
async def terminal_socket(ws: WebSocket, session_uuid: str, terminal_id: str) -> None:
    await serve_terminal(ws, session_uuid, terminal_id)


@router.websocket("/ws")
async def seed_terminal_socket(ws: WebSocket) -> None:
    q = ws.query_params
    await serve_terminal(ws, q.get("session_uuid", ""), q.get("terminal_id") or "default")


async def serve_terminal(ws: WebSocket, session_uuid: str, terminal_id: str) -> None:
    """Editors type; viewers watch (their input never reaches the PTY); a private terminal is
    the owner's alone (404 to anyone else, as if it did not exist)."""
    platform = platform_of(ws)
    await ws.accept()
    try:
        principal, session, access = await authorize(ws, session_uuid, Role.VIEWER)
        if not await platform.access.may_use_terminal(access, terminal_id):
            raise NotFound(f"no terminal {terminal_id!r}", code="terminal_not_found")
        terms = sandbox_part(platform, platform.terminals)
        cols = _int(ws.query_params.get("cols"), 80)
        rows = _int(ws.query_params.get("rows"), 24)
        read_only = not access.can(Role.EDITOR)
        att, reattached = await terms.open(
            session, terminal_id, cols, rows, create=not read_only,
            typist=None if read_only else principal.user_id,
        )  # fmt: skip
    except DomainError as exc:
        await close_quietly(ws, ws_close_code(exc), exc.message)
        return
    except Exception as exc:
        log.exception("opening terminal %s/%s failed", session_uuid, terminal_id)
        await close_quietly(ws, ws_close_code(exc), "terminal error")
        return
    typist = None if read_only else principal.user_id
    async with (
        revocable(ws, access, terminal_id=terminal_id) as revoked,
        terms.sandboxes.hold(att.session_uuid),
    ):
        try:
            replay = await att.replay()
            await ws.send_text(
                protocol.ready(terminal_id, reattached, len(replay), read_only=read_only)
            )
            if replay:
                await ws.send_bytes(replay)
            await _pump(ws, att, terms, typist, revoked)
        except Exception as exc:
            if not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("terminal socket %s ended with %r", terminal_id, exc)
        finally:
            await terms.detach(att)
    await close_quietly(ws, 1000, "terminal closed")


READ_ONLY = "you are a viewer in this workspace: the terminal is read-only for you"


async def _pump(
    ws: WebSocket,
    att: TerminalAttachment,
    terms: TerminalManager,
    typist: int | None,
    revoked: asyncio.Event,
) -> None:
    """``typist``: the user whose input goes to the PTY (``None``: a viewer, input refused)."""

    async def outbound() -> None:
        while True:
            msg = await att.next_message()
            if msg is None:
                return
            if isinstance(msg, bytes):
                await ws.send_bytes(msg)
            else:
                await ws.send_text(msg)

    async def inbound() -> None:
        while True:
            m = await ws.receive()
            if m["type"] == "websocket.disconnect" or revoked.is_set():
                return
            data = m.get("bytes")
            if data is not None:
                if typist is None:
                    att.notify(protocol.error("read_only", READ_ONLY))
                    continue
                terms.sandboxes.touch(att.session_uuid)
                terms.note_input(att, typist)
                await att.write(data)
                continue
            text = m.get("text")
            if text is None:
                continue
            try:
                ctl = protocol.parse_client_text(text)
            except protocol.ProtocolError as exc:
                att.notify(protocol.error("bad_message", str(exc)))
                continue
            if isinstance(ctl, protocol.Resize):
                if typist is None:  # the PTY's size is everyone's: a viewer's is not applied
                    continue
                await att.resize(ctl.cols, ctl.rows)
            else:
                att.notify(protocol.pong())

    tasks = [
        asyncio.create_task(outbound()),
        asyncio.create_task(inbound()),
        asyncio.create_task(revoked.wait()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            exc = t.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("terminal socket %s ended with %r", att.terminal_id, exc)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
