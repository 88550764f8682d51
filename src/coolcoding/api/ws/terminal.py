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
from coolcoding.api.ws.auth import authorize, close_quietly, platform_of
from coolcoding.errors import DomainError
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
    platform = platform_of(ws)
    await ws.accept()
    try:
        _, session = await authorize(ws, session_uuid)
        terms = sandbox_part(platform, platform.terminals)
        cols = _int(ws.query_params.get("cols"), 80)
        rows = _int(ws.query_params.get("rows"), 24)
        att, reattached = await terms.open(session, terminal_id, cols, rows)
    except DomainError as exc:
        await close_quietly(ws, ws_close_code(exc), exc.message)
        return
    except Exception as exc:
        log.exception("opening terminal %s/%s failed", session_uuid, terminal_id)
        await close_quietly(ws, ws_close_code(exc), "terminal error")
        return
    async with terms.sandboxes.hold(att.session_uuid):
        try:
            replay = await att.replay()
            await ws.send_text(protocol.ready(terminal_id, reattached, len(replay)))
            if replay:
                await ws.send_bytes(replay)
            att.start()
            await _pump(ws, att, terms)
        except Exception as exc:
            if not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("terminal socket %s ended with %r", terminal_id, exc)
        finally:
            await terms.detach(att)
    await close_quietly(ws, 1000, "terminal closed")


async def _pump(ws: WebSocket, att: TerminalAttachment, terms: TerminalManager) -> None:
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
            if m["type"] == "websocket.disconnect":
                return
            data = m.get("bytes")
            if data is not None:
                terms.sandboxes.touch(att.session_uuid)
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
                await att.resize(ctl.cols, ctl.rows)
            else:
                att.notify(protocol.pong())

    tasks = [asyncio.create_task(outbound()), asyncio.create_task(inbound())]
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
