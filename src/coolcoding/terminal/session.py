"""One PTY session: the runtime's shell, a bounded replay buffer, the attached clients.

A reader task pulls output from the PTY (the runtime's ``Terminal.read`` never blocks the loop),
strips the shell-integration sequences, appends the rest to the replay buffer and hands it to
every attached client. A client is a bounded queue; while any client's queue is over its high
water mark the reader waits (backpressure on the shell, like a real terminal), and a client that
stays stuck for ``STUCK_CLIENT_S`` is dropped (it can reattach and gets the replay).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from coolcoding.sandbox.base import Terminal
from coolcoding.services.commands import CommandRecord
from coolcoding.terminal import protocol
from coolcoding.terminal.replay import without_queries
from coolcoding.terminal.shell_integration import ShellEvent, ShellIntegrationParser

log = logging.getLogger(__name__)

HIGH_WATER_BYTES = 1024 * 1024
MAX_FRAME_BYTES = 256 * 1024
STUCK_CLIENT_S = 10.0

Message = bytes | str  # binary output | JSON control text
CommandHandler = Callable[["TerminalSession", CommandRecord], Awaitable[None]]


class TerminalClient:
    """One attached connection's outbox. ``None`` in the queue means: disconnect."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self.pending_bytes = 0
        self.drained = asyncio.Event()
        self.drained.set()

    def put(self, msg: Message | None) -> None:
        if isinstance(msg, bytes):
            self.pending_bytes += len(msg)
            if self.pending_bytes > HIGH_WATER_BYTES:
                self.drained.clear()
        self.queue.put_nowait(msg)

    async def get(self) -> Message | None:
        """The next message; consecutive output chunks already queued come as one (fewer frames)."""
        msg = await self.queue.get()
        if isinstance(msg, bytes):
            parts = [msg]
            size = len(msg)
            while size < MAX_FRAME_BYTES and not self.queue.empty():
                nxt = self.queue._queue[0]  # type: ignore[attr-defined]
                if not isinstance(nxt, bytes):
                    break
                parts.append(self.queue.get_nowait())  # type: ignore[arg-type]
                size += len(nxt)
            self.pending_bytes -= size
            if self.pending_bytes <= HIGH_WATER_BYTES // 2:
                self.drained.set()
            return parts[0] if len(parts) == 1 else b"".join(parts)
        return msg


class _Running:
    def __init__(self, command: str, cwd: str | None) -> None:
        self.command = command
        self.cwd = cwd
        self.started_at = datetime.now(UTC)
        self.t0 = time.monotonic()
        self.output = bytearray()
        self.truncated = False


class TerminalSession:
    def __init__(
        self,
        terminal_id: str,
        session_uuid: str,
        terminal: Terminal,
        *,
        nonce: str,
        cols: int,
        rows: int,
        scrollback_bytes: int,
        command_output_bytes: int,
        on_command: CommandHandler,
    ) -> None:
        self.terminal_id = terminal_id
        self.session_uuid = session_uuid
        self.terminal = terminal
        self.cols, self.rows = cols, rows
        self.clients: set[TerminalClient] = set()
        self.alive = True
        self.exit_code: int | None = None
        self.detached_at: float | None = time.monotonic()
        self._parser = ShellIntegrationParser(nonce)
        # Replay buffer: whole chunks, trimmed from the left (no memmove of the whole buffer per
        # chunk, which at 256 KiB would cost more than the output itself).
        self._replay: collections.deque[bytes] = collections.deque()
        self._replay_bytes = 0
        self._scrollback = scrollback_bytes
        self._output_limit = command_output_bytes
        self._on_command = on_command
        self._cwd: str | None = None
        self._next_command = ""
        self._running: _Running | None = None
        self._reader: asyncio.Task[None] | None = None
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._command_lock = asyncio.Lock()

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop())

    # --- clients -----------------------------------------------------------------------------

    def attach(self) -> tuple[TerminalClient, bytes]:
        """A new client and the scrollback to replay to it (taken atomically with the attach),
        without the terminal queries in it (replay.py: their answers would reach the shell)."""
        client = TerminalClient()
        self.clients.add(client)
        self.detached_at = None
        return client, without_queries(b"".join(self._replay))

    def detach(self, client: TerminalClient) -> None:
        self.clients.discard(client)
        if not self.clients:
            self.detached_at = time.monotonic()

    def broadcast(self, msg: Message | None) -> None:
        for c in list(self.clients):
            c.put(msg)

    async def write(self, data: bytes) -> None:
        if self.alive:
            await self.terminal.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = protocol.clamp_size(cols, rows)
        if self.alive:
            await self.terminal.resize(self.cols, self.rows)

    async def close(self) -> None:
        await self.terminal.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 5.0)
        for t in list(self._command_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # --- output ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.terminal.read()
                if not data:
                    break
                for seg in self._parser.feed(data):
                    if isinstance(seg, bytes):
                        self._output(seg)
                    else:
                        self._shell_event(seg)
                await self._wait_for_clients()
        except Exception:
            log.exception("terminal %s/%s read failed", self.session_uuid, self.terminal_id)
        rest = self._parser.flush()
        if rest:
            self._output(rest)
        self.alive = False
        code = self.terminal.poll()
        self.exit_code = code if code is not None else -1
        self.broadcast(protocol.exited(self.exit_code))
        self.broadcast(None)

    def _output(self, data: bytes) -> None:
        self._replay.append(data)
        self._replay_bytes += len(data)
        while self._replay_bytes - len(self._replay[0]) >= self._scrollback:
            self._replay_bytes -= len(self._replay.popleft())
        over = self._replay_bytes - self._scrollback
        if over > 0:
            # Cut at a line start when one is near, so the replay does not begin mid-sequence.
            head = self._replay[0]
            nl = head.find(b"\n", over, over + 4096)
            cut = nl + 1 if nl >= 0 else over
            self._replay[0] = head[cut:]
            self._replay_bytes -= cut
        run = self._running
        if run is not None and not run.truncated:
            room = self._output_limit - len(run.output)
            run.output += data[:room]
            run.truncated = len(data) > room
        self.broadcast(data)

    async def _wait_for_clients(self) -> None:
        for c in list(self.clients):
            if c.drained.is_set():
                continue
            try:
                await asyncio.wait_for(c.drained.wait(), STUCK_CLIENT_S)
            except TimeoutError:
                log.info("dropping a stuck client of terminal %s", self.terminal_id)
                self.detach(c)
                c.put(None)

    def _shell_event(self, ev: ShellEvent) -> None:
        if ev.kind == "P" and ev.payload.startswith("Cwd="):
            self._cwd = ev.payload[4:]
        elif ev.kind == "E":
            self._next_command = ev.payload
        elif ev.kind == "C":
            self._running = _Running(self._next_command, self._cwd)
            self._next_command = ""
        elif ev.kind == "D" and self._running is not None:
            run, self._running = self._running, None
            try:
                exit_code: int | None = int(ev.payload)
            except ValueError:
                exit_code = None
            rec = CommandRecord(
                terminal_id=self.terminal_id,
                command=run.command,
                exit_code=exit_code,
                cwd=run.cwd,
                started_at=run.started_at,
                duration_ms=(time.monotonic() - run.t0) * 1000,
                output=bytes(run.output).decode("utf-8", "replace"),
                output_truncated=run.truncated,
            )
            task = asyncio.create_task(self._finish_command(rec))
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)

    async def _finish_command(self, rec: CommandRecord) -> None:
        async with self._command_lock:  # one at a time, in order
            try:
                await self._on_command(self, rec)
            except Exception:
                log.exception("recording a command of terminal %s failed", self.terminal_id)
            self.broadcast(protocol.command(rec.command, rec.exit_code, rec.cwd, rec.duration_ms))
