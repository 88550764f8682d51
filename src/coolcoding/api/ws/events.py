"""The workspace events WebSocket: relays the session's EventBus to the browser.

Opening it opens the session: its sandbox starts in the background (progress arrives as
``sandbox_status`` events) and stays up while the socket is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, WebSocket

from coolcoding.api.errors import ws_close_code
from coolcoding.api.ws.auth import WS_POLICY, authorize, close_quietly, platform_of, revocable
from coolcoding.db.models import CodeSession
from coolcoding.errors import DomainError
from coolcoding.schemas.ws import Pong, SandboxStatusEvent
from coolcoding.services.sandboxes import SandboxManager

log = logging.getLogger(__name__)
router = APIRouter()


EVENTS = "/api/sessions/{session_uuid}/events"


@router.websocket(EVENTS)
async def events_socket(ws: WebSocket, session_uuid: str) -> None:
    platform = platform_of(ws)
    await ws.accept()
    try:
        _, session, access = await authorize(ws, session_uuid, WS_POLICY[EVENTS])
    except DomainError as exc:
        await close_quietly(ws, ws_close_code(exc), exc.message)
        return
    uuid = str(session.uuid)
    sandboxes = platform.sandboxes
    async with platform.events.subscribe(uuid) as queue, contextlib.AsyncExitStack() as stack:
        revoked = await stack.enter_async_context(revocable(ws, access))
        status = session.sandbox_status
        if sandboxes is not None:
            await stack.enter_async_context(sandboxes.hold(uuid))
            status = "running" if sandboxes.is_running(uuid) else status
            # Runs to its end even if the socket closes first (a start is never half done).
            _background(_start(sandboxes, session))
        await ws.send_text(SandboxStatusEvent(status=status).as_json())

        async def outbound() -> None:
            while True:
                # Events are built by the models of schemas/ws.py (``as_dict``); ensure_ascii: a
                # lone surrogate (an undecodable file name) is escaped, never an encoding error.
                await ws.send_text(json.dumps(await queue.get()))

        async def inbound() -> None:
            while True:
                m = await ws.receive()
                if m["type"] == "websocket.disconnect":
                    return
                if m.get("text") and '"ping"' in m["text"]:
                    await ws.send_text(Pong().as_json())

        tasks = [
            asyncio.create_task(outbound()),
            asyncio.create_task(inbound()),
            asyncio.create_task(revoked.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
    await close_quietly(ws, 1000, "bye")


_tasks: set[asyncio.Task[None]] = set()


def _background(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _start(sandboxes: SandboxManager, session: CodeSession) -> None:
    """Errors are already published as a ``sandbox_status`` event with status ``error``."""
    with contextlib.suppress(Exception):
        await sandboxes.ensure_started(session)
