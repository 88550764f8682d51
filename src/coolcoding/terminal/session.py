"""One client's attachment to a terminal that lives in the sandbox's agent.

The PTY, its process and its scrollback live in the agent (agent/pty.py), so they outlive this
server process; each WebSocket gets its own agent connection and attachment. The scrollback the
agent replays first (announced by ``pty.replay`` with its size) has its terminal queries
neutralized (replay.py: their answers would reach the shell); live output is forwarded as is.
Output waits in the agent connection's channel (client.py) until the socket's sender takes it;
above ``CHANNEL_HIGH_WATER`` unsent bytes the connection stops reading, which stops the agent
reading the PTY (backpressure on the shell, like a real terminal): a slow browser slows the shell.
"""

from __future__ import annotations

import logging
from typing import Any

from coolcoding.agent.client import AgentClient, Attachment
from coolcoding.sandbox.base import Sandbox
from coolcoding.terminal import protocol
from coolcoding.terminal.replay import without_queries

log = logging.getLogger(__name__)

NOTICE_QUEUE_LIMIT = 1024  # queued items beyond which a notice is dropped (a stuck client)
MAX_FRAME_BYTES = 256 * 1024

Message = bytes | str  # binary output | JSON control text


class _Notice(dict[str, Any]):
    """A message of this server for the client (a recorded command) or the end of the
    attachment, queued in order with the agent's output. A distinct type: nothing the agent
    sends (decoded JSON) is one, so the agent cannot forge a control message to the browser."""


_CLOSE = _Notice()


class TerminalAttachment:
    def __init__(
        self, session_uuid: str, terminal_id: str, client: AgentClient, attachment: Attachment
    ) -> None:
        self.session_uuid = session_uuid
        self.terminal_id = terminal_id
        self.client = client
        self.attachment = attachment
        # The agent connection's channel is the outbox: its reader task queues the output and
        # the socket's sender takes it, one task hop per chunk (no feeder task in between).
        # It pauses the agent connection above ``CHANNEL_HIGH_WATER`` unsent bytes.
        self.stream = attachment.stream
        self._items = aiter(attachment)
        self._pending: bytes | dict[str, Any] | None = None
        self._done = False

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
            if first is None:  # the stream ended at once: the agent is gone
                self.stream.put(None)
            return b""
        size = first.get("data", {}).get("bytes", 0)
        size = size if isinstance(size, int) else 0
        data = bytearray()
        while len(data) < size:
            item = await anext(self._items, None)
            if item is None:
                self.stream.put(None)  # seen by ``next_message``
                break
            if isinstance(item, bytes):
                data += item
        return without_queries(bytes(data))

    def notify(self, message: str) -> None:
        """A control message (a recorded command) for this client; dropped if it is stuck."""
        if not self._done and self.stream.queue.qsize() < NOTICE_QUEUE_LIMIT:
            self.stream.queue.put_nowait(_Notice(text=message))

    def end(self) -> None:
        """Disconnect the client (``next_message`` returns None after what is queued)."""
        self.stream.queue.put_nowait(_CLOSE)

    async def next_message(self) -> Message | None:
        """The next message for the client, ``None`` at the end; output chunks already queued
        come as one (fewer frames)."""
        while not self._done:
            item = self._pending
            if item is not None:
                self._pending = None
            else:
                item = await self.stream.get()
            if isinstance(item, bytes):
                return self._coalesce(item)
            if item is None:  # the agent's connection ended without the shell's exit
                self._done = True
                return protocol.exited(-1)
            if isinstance(item, _Notice):
                if item is _CLOSE:
                    break
                return str(item["text"])
            if item.get("event") == "pty.exit":
                self._done = True
                code = item.get("data", {}).get("exit_code")
                return protocol.exited(code if isinstance(code, int) else -1)
            # pty.command: the manager sends it once recorded
        self._done = True
        return None

    def _coalesce(self, first: bytes) -> bytes:
        parts = [first]
        size = len(first)
        queue = self.stream.queue
        while size < MAX_FRAME_BYTES and not queue.empty():
            nxt = queue._queue[0]  # type: ignore[attr-defined]
            if not isinstance(nxt, bytes):
                break
            parts.append(self.stream.get_nowait())  # type: ignore[arg-type]
            size += len(nxt)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def write(self, data: bytes) -> None:
        await self.attachment.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        cols, rows = protocol.clamp_size(cols, rows)
        await self.client.pty_resize(self.terminal_id, cols, rows)

    async def close(self) -> None:
        """Detach (the terminal keeps running in the agent) and close this connection."""
        await self.client.close()
