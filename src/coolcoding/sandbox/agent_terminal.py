"""``Sandbox.open_terminal`` for any runtime whose sandbox runs an agent: a ``Terminal`` over one of
the agent's PTYs, on its own agent connection (the one terminal path: the PTY lives in the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Mapping

from coolcoding.agent.client import AgentClient, AgentConnectionLost, AgentError, Attachment
from coolcoding.sandbox.base import Terminal


class AgentTerminal(Terminal):
    def __init__(
        self,
        client: AgentClient,
        terminal_id: str,
        attachment: Attachment,
        pid: int,
        on_close: Callable[[AgentTerminal], None],
    ) -> None:
        self.client = client
        self.terminal_id = terminal_id
        self.attachment = attachment
        self.pid = pid  # of a live process of the sandbox (its agent, on the host)
        self._items = aiter(attachment)
        self._exit: int | None = None
        self._ended = False
        self._closed = False
        self._notices: list[bytes] = []
        self._on_close = on_close

    @classmethod
    async def open(
        cls,
        client: AgentClient,
        cols: int,
        rows: int,
        env: Mapping[str, str] | None,
        *,
        pid: int,
        on_close: Callable[[AgentTerminal], None],
    ) -> AgentTerminal:
        tid = "rt-" + secrets.token_hex(8)
        await client.pty_open(cols, rows, terminal_id=tid, env=dict(env or {}))
        # With the replay: what the shell printed before the attach (its first prompt, when it
        # is faster than this round trip) is this new terminal's first output, not history.
        att = await client.pty_attach(tid, replay=True)
        return cls(client, tid, att, pid, on_close)

    def notice(self, message: str) -> None:
        """Queue a server message for the reader (e.g. why the terminal was stopped)."""
        self._notices.append(f"\r\n[coolcoding] {message}\r\n".encode())

    async def read(self) -> bytes:
        while True:
            if self._notices:
                return self._notices.pop(0)
            if self._ended:
                return b""
            item = await anext(self._items, None)
            if item is None:
                self._ended = True
                if self._exit is None:
                    self._exit = -1  # the agent (and so the sandbox) is gone
            elif isinstance(item, bytes):
                if item:
                    return item
            elif item.get("event") == "pty.exit":
                code = item.get("data", {}).get("exit_code")
                self._exit = code if isinstance(code, int) else -1

    async def write(self, data: bytes) -> None:
        await self.attachment.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        await self.client.pty_resize(self.terminal_id, cols, rows)

    async def close(self, *, kill: bool = True) -> None:
        """Kill the shell's session (``kill``: the agent still runs) and close the connection."""
        if self._closed:
            return
        self._closed = True
        if kill:
            with contextlib.suppress(AgentError, AgentConnectionLost, OSError, TimeoutError):
                async with asyncio.timeout(5):
                    await self.client.pty_close(self.terminal_id)
        if self._exit is None:
            self._exit = -1
        self._ended = True
        await self.client.close()
        self._on_close(self)

    def poll(self) -> int | None:
        return self._exit
