"""A PTY owned by the agent: the process, a bounded scrollback and any number of attachments.

The PTY outlives every connection: a client that disconnects loses nothing, a new one attaches by
terminal id and gets the scrollback, then live output. The master fd is non-blocking and driven
by ``add_reader``/``add_writer``; its reader is removed before the fd is closed (a closed fd
number reused by another file while still watched once fed a PTY's output into the wrong place).
While an attached peer's send buffer is over ``HIGH_WATER_BYTES`` reading pauses (backpressure on
the shell, like a real terminal); a peer stuck for ``STUCK_PEER_S`` is detached, not waited for.

Output is sent as soon as it is read (a keystroke's echo waits for nothing), except under a flood:
Linux hands a PTY's output over in reads of at most 4 KiB, so a burst of ``FLOOD_BYTES`` or more
means the program is still writing. Then the PTY is still read at once (it buffers only ~12 KiB
before the program blocks), but what is read is held for up to ``COALESCE_S`` or
``COALESCE_BYTES`` and sent as one frame: tens of KiB per frame instead of one per 4 KiB read,
which divides the per-frame cost on every hop (agent, server, WebSocket, browser) under ``cat``.
Held output is sent before any event of the terminal and before a new attachment's replay.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import signal
import struct
import termios
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coolcoding.agent.procs import kill_session
from coolcoding.terminal.shell_integration import NONCE_ENV, ShellIntegrationParser, new_nonce

log = logging.getLogger(__name__)

HIGH_WATER_BYTES = 1024 * 1024
STUCK_PEER_S = 10.0
READ_BYTES = 65536
BURST_BYTES = 256 * 1024
# A first read shorter than this is a keystroke's echo or a prompt, not a flood (Linux hands a
# flood over in reads of 2-4 KiB): it is sent without a second read failing with EAGAIN. Output
# that comes meanwhile wakes the reader again. A burst that starts big reads on as before (the
# flood's coalescing counts the whole burst).
SHORT_READ_BYTES = 1024
FLOOD_BYTES = 4095  # a full read of n_tty's 4 KiB buffer: more is coming
COALESCE_S = 0.002
COALESCE_BYTES = 128 * 1024
MAX_PENDING_INPUT = 1024 * 1024
HANGUP_GRACE_S = 0.2
KILL_GRACE_S = 1.0


class Peer(Protocol):
    """The side of a connection a terminal or an exec writes to."""

    def send_data(self, channel: int, data: bytes) -> None: ...
    def send_event(self, event: str, channel: int, data: dict[str, Any]) -> None: ...
    def backlog(self) -> int: ...
    async def drained(self) -> None: ...


CommandHook = Callable[["AgentTerminal", dict[str, Any]], Awaitable[None]]


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_controlling_tty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class _Running:
    command: str
    cwd: str | None
    started_at: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.monotonic)
    output: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    typist: int | None = None


class AgentTerminal:
    def __init__(
        self,
        terminal_id: str,
        *,
        max_frame: int,
        scrollback_bytes: int,
        command_output_bytes: int,
        on_command: CommandHook,
    ) -> None:
        self.terminal_id = terminal_id
        self._burst = min(BURST_BYTES, max_frame)  # one output frame never exceeds the limit
        self.cols = self.rows = 0
        self.pid = -1
        self.exit_code: int | None = None
        self.attachments: dict[tuple[Peer, int], None] = {}
        self._scrollback: collections.deque[bytes] = collections.deque()
        self._scrollback_skip = 0  # bytes of the oldest chunk already dropped (no re-copy)
        self._scrollback_bytes = 0  # what the scrollback holds: the skipped bytes not counted
        self._scrollback_limit = scrollback_bytes
        self._output_limit = command_output_bytes
        self._on_command = on_command
        self._nonce = new_nonce()
        self._parser = ShellIntegrationParser(self._nonce)
        self._fd = -1
        self._loop = asyncio.get_running_loop()
        self._proc: asyncio.subprocess.Process | None = None
        self._pending_input = bytearray()
        self._paused = False
        self._held: list[bytes] = []  # output read under a flood, not sent yet
        self._held_bytes = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._finished = asyncio.Event()
        self._finishing = False
        self._cwd: str | None = None
        self._next_command = ""
        self._running: _Running | None = None
        self._typist: int | None = None  # of the last input written (protocol 4's ``typist``)
        self._tasks: set[asyncio.Task[None]] = set()
        self._command_lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return not self._finished.is_set()

    def info(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal_id,
            "pid": self.pid,
            "cols": self.cols,
            "rows": self.rows,
            "alive": self.alive,
            "exit_code": self.exit_code,
            "attachments": len(self.attachments),
        }

    async def start(
        self, argv: Sequence[str], cols: int, rows: int, env: Mapping[str, str], cwd: str
    ) -> None:
        master, slave = os.openpty()
        try:
            self.cols, self.rows = cols, rows
            set_winsize(master, cols, rows)
            os.set_blocking(master, False)
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**env, NONCE_ENV: self._nonce},
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_take_controlling_tty,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.pid = self._proc.pid
        self._fd = master
        self._loop.add_reader(master, self._on_readable)
        self._spawn(self._wait_exit())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- attachments ---------------------------------------------------------------------------

    def attach(self, peer: Peer, channel: int, *, replay: bool, max_frame: int) -> None:
        """Register the attachment and queue the scrollback to it, atomically (one loop step)."""
        self.flush()  # the scrollback holds the held output: the others get it first
        self.attachments[(peer, channel)] = None
        if replay:
            data = self.scrollback()
            peer.send_event("pty.replay", channel, {"terminal_id": self.terminal_id,
                                                    "bytes": len(data)})  # fmt: skip
            for i in range(0, len(data), max_frame):
                peer.send_data(channel, data[i : i + max_frame])
        if not self.alive:
            self._end_attachment(peer, channel)

    def scrollback(self) -> bytes:
        """The last ``scrollback_bytes`` (about) of output, as a new attachment replays it."""
        chunks = list(self._scrollback)
        if chunks and self._scrollback_skip:
            chunks[0] = chunks[0][self._scrollback_skip :]
        return b"".join(chunks)

    def detach(self, peer: Peer, channel: int) -> bool:
        return self.attachments.pop((peer, channel), 0) is None

    def detach_peer(self, peer: Peer) -> None:
        for key in [k for k in self.attachments if k[0] is peer]:
            del self.attachments[key]

    def _end_attachment(self, peer: Peer, channel: int) -> None:
        self.flush()
        self.attachments.pop((peer, channel), None)
        peer.send_event("pty.exit", channel, {"terminal_id": self.terminal_id,
                                              "exit_code": self.exit_code})  # fmt: skip
        peer.send_data(channel, b"")

    # --- input ---------------------------------------------------------------------------------

    def write(self, data: bytes, typist: int | None = None) -> None:
        """Input for the shell from an attachment that carries ``typist``'s keystrokes."""
        if self._fd < 0 or not data:
            return
        self._typist = typist
        if len(self._pending_input) + len(data) > MAX_PENDING_INPUT:
            log.warning("terminal %s: input dropped (the shell reads nothing)", self.terminal_id)
            return
        if self._pending_input:
            self._pending_input += data
            return
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            return
        if n < len(data):
            self._pending_input += data[n:]
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            n = os.write(self._fd, self._pending_input)
        except BlockingIOError:
            return
        except OSError:
            n = len(self._pending_input)
        del self._pending_input[:n]
        if not self._pending_input:
            self._loop.remove_writer(self._fd)

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        if self._fd >= 0:
            set_winsize(self._fd, cols, rows)

    # --- output --------------------------------------------------------------------------------

    def _read_burst(self) -> bytes | None:
        """What the PTY holds now, up to ``BURST_BYTES`` (fewer, larger frames under a flood);
        ``b""`` at hang-up, ``None`` when there is nothing yet."""
        chunks: list[bytes] = []
        size = 0
        while size < self._burst:
            try:
                data = os.read(self._fd, min(READ_BYTES, self._burst - size))
            except BlockingIOError:
                break
            except OSError:  # EIO: every slave fd is closed (the shell and its children left)
                data = b""
            if not data:
                if not chunks:
                    return b""
                break
            chunks.append(data)
            size += len(data)
            if size < SHORT_READ_BYTES:  # a keystroke's echo: skip the read that would fail
                break
        return b"".join(chunks) if chunks else None

    def _on_readable(self) -> None:
        data = self._read_burst()
        if data is None:
            return
        if not data:
            self._spawn(self._finish())
            return
        for seg in self._parser.feed(data):
            if isinstance(seg, bytes):
                self._output(seg)
            else:
                self._shell_event(seg.kind, seg.payload)
        stuck = [k for k in self.attachments if k[0].backlog() > HIGH_WATER_BYTES]
        if stuck and not self._paused:
            self._paused = True
            self._loop.remove_reader(self._fd)
            self._spawn(self._wait_for_peers(stuck))

    async def _wait_for_peers(self, stuck: list[tuple[Peer, int]]) -> None:
        for peer, channel in stuck:
            try:
                await asyncio.wait_for(peer.drained(), STUCK_PEER_S)
            except (TimeoutError, ConnectionError):
                log.info("terminal %s: detaching a stuck peer", self.terminal_id)
                self.detach(peer, channel)
        self._paused = False
        if self._fd >= 0 and self.alive:
            self._loop.add_reader(self._fd, self._on_readable)

    def _output(self, data: bytes) -> None:
        self._keep(data)
        run = self._running
        if run is not None and not run.truncated:
            room = self._output_limit - len(run.output)
            run.output += data[:room]
            run.truncated = len(data) > room
        if not self._held and len(data) < FLOOD_BYTES:
            for peer, channel in list(self.attachments):
                peer.send_data(channel, data)
            return
        self._held.append(data)  # after held output, in order
        self._held_bytes += len(data)
        if self._held_bytes >= COALESCE_BYTES:
            self.flush()
        elif self._flush_timer is None:
            self._flush_timer = self._loop.call_later(COALESCE_S, self.flush)

    def _keep(self, data: bytes) -> None:
        """Append to the scrollback, dropping the oldest bytes over the limit. The oldest chunk
        is cut by an offset, not re-sliced: under ``cat`` every read would otherwise copy most
        of a chunk of up to ``BURST_BYTES`` once more."""
        chunks = self._scrollback
        chunks.append(data)
        self._scrollback_bytes += len(data)
        limit = self._scrollback_limit
        while self._scrollback_bytes - (len(chunks[0]) - self._scrollback_skip) >= limit:
            self._scrollback_bytes -= len(chunks.popleft()) - self._scrollback_skip
            self._scrollback_skip = 0
        over = self._scrollback_bytes - limit
        if over > 0:  # cut the oldest chunk at a line start when one is near
            start = self._scrollback_skip + over
            nl = chunks[0].find(b"\n", start, start + 4096)
            cut = nl + 1 - self._scrollback_skip if nl >= 0 else over
            self._scrollback_skip += cut
            self._scrollback_bytes -= cut

    def flush(self) -> None:
        """Send the output held under a flood (one frame of at most ``max_frame`` bytes each)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._held:
            return
        data = b"".join(self._held) if len(self._held) > 1 else self._held[0]
        self._held.clear()
        self._held_bytes = 0
        for peer, channel in list(self.attachments):
            for i in range(0, len(data), self._burst):
                peer.send_data(channel, data[i : i + self._burst])

    def _shell_event(self, kind: str, payload: str) -> None:
        if kind == "P" and payload.startswith("Cwd="):
            self._cwd = payload[4:]
        elif kind == "E":
            self._next_command = payload
        elif kind == "C":
            # The Enter that started it was written before the shell said so: the last input.
            self._running = _Running(self._next_command, self._cwd, typist=self._typist)
            self._next_command = ""
        elif kind == "D" and self._running is not None:
            run, self._running = self._running, None
            try:
                code: int | None = int(payload)
            except ValueError:
                code = None
            event = {
                "terminal_id": self.terminal_id,
                "command": run.command,
                "exit_code": code,
                "cwd": run.cwd,
                "started_at": run.started_at,
                "duration_ms": (time.monotonic() - run.t0) * 1000,
                "output": bytes(run.output).decode("utf-8", "replace"),
                "output_truncated": run.truncated,
                "typist": run.typist,
            }
            self._spawn(self._command_done(event))

    async def _command_done(self, event: dict[str, Any]) -> None:
        async with self._command_lock:  # in order, one at a time
            try:
                await self._on_command(self, event)
            except Exception:
                log.exception("terminal %s: command hook failed", self.terminal_id)
            self.flush()  # the command's output before its event
            old = {k: v for k, v in event.items() if k != "typist"}
            for peer, channel in list(self.attachments):
                new = getattr(peer, "protocol", 4) >= 4  # protocol < 4: no typist
                peer.send_event("pty.command", channel, event if new else old)

    # --- end -----------------------------------------------------------------------------------

    async def _wait_exit(self) -> None:
        assert self._proc is not None
        await self._proc.wait()
        # The shell is gone; give the kernel a moment to hang up the PTY (a background job may
        # still hold the slave: it is part of the shell's session and is hung up with it).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGHUP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), HANGUP_GRACE_S)
        await self._finish()

    async def _finish(self) -> None:
        if self._finishing:
            await self._finished.wait()
            return
        self._finishing = True
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)  # before close: never watch a reused fd number
            self._loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = -1
        rest = self._parser.flush()
        if rest:
            self._output(rest)
        self.flush()
        assert self._proc is not None
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            await self._proc.wait()
        code = self._proc.returncode
        self.exit_code = code if code is not None and code >= 0 else 128 - (code or 0)
        self._finished.set()
        for peer, channel in list(self.attachments):
            self._end_attachment(peer, channel)

    async def close(self) -> None:
        """Hang up the terminal's whole session, then kill what is left; wait for the end."""
        if self.pid > 0 and self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGHUP)
            try:
                await asyncio.wait_for(self._finished.wait(), KILL_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                kill_session(self.pid)  # jobs in their own groups, SIGHUP ignorers
        await self._finished.wait()
        kill_session(self.pid)
