"""One client's attachment to a terminal that lives in the sandbox's agent.

The PTY, its process and its scrollback live in the agent (agent/pty.py), so they outlive this
server process; each WebSocket gets its own agent connection and attachment. The scrollback the
agent replays first (announced by ``pty.replay`` with its size) has its terminal queries
neutralized (replay.py: their answers would reach the shell); live output is forwarded as is.
The outbox is bounded: a slow browser stops this reader, which fills the agent connection's
channel, which stops the agent reading the PTY (backpressure on the shell, like a real terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from coolcoding.agent.client import AgentClient, Attachment
from coolcoding.sandbox.base import Sandbox
from coolcoding.terminal import protocol
from coolcoding.terminal.replay import without_queries

log = logging.getLogger(__name__)

OUTBOX_ITEMS = 64
MAX_FRAME_BYTES = 256 * 1024

Message = bytes | str  # binary output | JSON control text


class TerminalAttachment:
    def __init__(
        self, session_uuid: str, terminal_id: str, client: AgentClient, attachment: Attachment
    ) -> None:
        self.session_uuid = session_uuid
        self.terminal_id = terminal_id
        self.client = client
        self.attachment = attachment
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue(OUTBOX_ITEMS)
        self._feeder: asyncio.Task[None] | None = None
        self._items = aiter(attachment)

    @classmethod
    async def open(
        cls, sandbox: Sandbox, session_uuid: str, terminal_id: str, typist: int | None = None
    ) -> TerminalAttachment:
        """``typist``: the user who types through it (the agent reports them with each command
        they start, so whichever replica records the command knows who typed it)."""
        client = await sandbox.connect_agent()
        try:
            att = await client.pty_attach(terminal_id, typist=typist)
        except BaseException:
            await client.close()
            raise
        return cls(session_uuid, terminal_id, client, att)

    async def replay(self) -> bytes:
        """The scrollback (the agent sends it first), without terminal queries."""
        first = await anext(self._items, None)
        if not isinstance(first, dict) or first.get("event") != "pty.replay":
            self._pending = first
            return b""
        size = first.get("data", {}).get("bytes", 0)
        size = size if isinstance(size, int) else 0
        data = bytearray()
        while len(data) < size:
            item = await anext(self._items, None)
            if item is None:
                break
            if isinstance(item, bytes):
                data += item
        return without_queries(bytes(data))

    _pending: bytes | dict[str, Any] | None = None

    def start(self) -> None:
        self._feeder = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        try:
            if self._pending is not None and await self._forward(self._pending):
                await self.outbox.put(None)
                return
            async for item in self._items:
                if await self._forward(item):
                    break
            else:  # the agent's connection ended without the shell's exit: the agent is gone
                await self.outbox.put(protocol.exited(-1))
        except Exception:  # not CancelledError: closed by ``close``, nobody reads any more
            log.exception("terminal %s/%s: agent stream failed", self.session_uuid,
                          self.terminal_id)  # fmt: skip
        await self.outbox.put(None)

    async def _forward(self, item: bytes | dict[str, Any]) -> bool:
        """Queue one item for the browser; True at the terminal's end."""
        if isinstance(item, bytes):
            await self.outbox.put(item)
            return False
        if item.get("event") == "pty.exit":
            code = item.get("data", {}).get("exit_code")
            await self.outbox.put(protocol.exited(code if isinstance(code, int) else -1))
            return True
        return False  # pty.command: the manager sends it once recorded

    def notify(self, message: str) -> None:
        """A control message (a recorded command) for this client; dropped if it is stuck."""
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(message)

    async def next_message(self) -> Message | None:
        """The next message; output chunks already queued come as one (fewer frames)."""
        msg = await self.outbox.get()
        if not isinstance(msg, bytes):
            return msg
        parts = [msg]
        size = len(msg)
        while size < MAX_FRAME_BYTES and not self.outbox.empty():
            nxt = self.outbox._queue[0]  # type: ignore[attr-defined]
            if not isinstance(nxt, bytes):
                break
            parts.append(self.outbox.get_nowait())  # type: ignore[arg-type]
            size += len(nxt)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def write(self, data: bytes) -> None:
        await self.attachment.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        cols, rows = protocol.clamp_size(cols, rows)
        await self.client.pty_resize(self.terminal_id, cols, rows)

    async def close(self) -> None:
        """Detach (the terminal keeps running in the agent) and close this connection."""
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._feeder
        await self.client.close()
