"""A PTY terminal: the master stays on the host, the slave is the sandboxed shell's tty.

All I/O on the master is non-blocking and driven by the event loop through a ``LoopFd`` (which
unwatches the fd before it closes it: see loopfd.py); nothing blocks the loop. Reading is demand-driven (one read per ``read()`` call), so a shell
producing output faster than the client consumes it blocks on the full PTY, not our memory.

TIOCSTI note: the shell may push bytes into its own tty's input queue (TIOCSTI). That is harmless
here: the PTY belongs to this sandbox alone, and the only reader of that input is the sandboxed
shell itself; nothing on the host reads the PTY's input side. (exec uses bwrap --new-session.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
from collections.abc import Callable

from coolcoding.sandbox.base import Terminal
from coolcoding.sandbox.local.cgroups import Cgroup
from coolcoding.sandbox.local.loopfd import LoopFd
from coolcoding.sandbox.local.process import SandboxProcess


def set_winsize(fd: int, cols: int, rows: int) -> None:
    cols = max(1, min(int(cols), 1000))
    rows = max(1, min(int(rows), 1000))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class LocalTerminal(Terminal):
    def __init__(
        self,
        proc: SandboxProcess,
        master_fd: int,
        cgroup: Cgroup,
        status_fd: int,
        on_close: Callable[[LocalTerminal], None] | None = None,
    ) -> None:
        self._status = LoopFd(status_fd)  # bwrap's --json-status-fd (to reap its inner process)
        self._on_close = on_close
        self._proc = proc
        self._master = LoopFd(master_fd)
        self._cg = cgroup
        self._closed = False
        self._notices: list[bytes] = []
        self._read_lock = asyncio.Lock()
        self._releasing: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def notice(self, message: str) -> None:
        """Queue a server message for the reader (e.g. why the sandbox was stopped)."""
        self._notices.append(f"\r\n[coolcoding] {message}\r\n".encode())

    async def read(self) -> bytes:
        async with self._read_lock:
            while True:
                if self._master.closed:
                    return self._notices.pop(0) if self._notices else b""
                try:
                    data = self._master.read(65536)
                except BlockingIOError:
                    if self._proc.done:
                        # The shell exited; its pid namespace (and so every slave holder) goes
                        # with it. Give the kernel a moment to hang up, then call it the end.
                        await asyncio.sleep(0.02)
                        try:
                            data = self._master.read(65536)
                        except OSError:
                            data = b""
                        if data:
                            return data
                        await self._release()
                        continue
                    # The master also wakes up (EIO) when the last slave holder exits; a close
                    # wakes it too (the LoopFd unwatches before it closes).
                    ready = self._master.when_readable()
                    closer: asyncio.Future[object] = asyncio.ensure_future(self._proc.wait())
                    waiters: set[asyncio.Future[object]] = {ready, closer}  # type: ignore[arg-type]
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        closer.cancel()
                        ready.cancel()
                    continue
                except OSError as e:
                    if e.errno != errno.EIO:  # EIO: every slave fd is closed, the shell is gone
                        raise
                    data = b""
                if data:
                    return self._drain_more(data)
                await self._release()

    def _drain_more(self, first: bytes, limit: int = 256 * 1024) -> bytes:
        """Append what the PTY already holds (it hands out ~4 KiB a read), so that a fast
        producer costs one wake-up and one WebSocket frame per batch, not per 4 KiB; nothing
        waits for data that is not there yet, so latency is unchanged."""
        chunks = [first]
        total = len(first)
        while total < limit:
            try:
                more = self._master.read(65536)
            except OSError:  # EAGAIN (nothing more now) or EIO (hung up: the next read says so)
                break
            if not more:
                break
            chunks.append(more)
            total += len(more)
        return first if len(chunks) == 1 else b"".join(chunks)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._master.closed:
            try:
                view = view[self._master.write(view) :]
            except BlockingIOError:
                try:
                    await asyncio.wait_for(self._master.writable(), 5.0)
                except TimeoutError:
                    return  # the shell does not read its input; drop instead of piling up
            except OSError as e:
                if e.errno in (errno.EIO, errno.EPIPE):
                    return
                raise

    async def resize(self, cols: int, rows: int) -> None:
        if not self._master.closed:
            set_winsize(self._master.fd, cols, rows)  # the kernel sends SIGWINCH to the foreground

    def kill_processes(self) -> None:
        self._proc.terminate_tree(self._cg)

    async def _release(self) -> None:
        """Close the master and reap everything, once, whoever (reader or close) asks first."""
        if self._releasing is None:
            self._releasing = asyncio.ensure_future(self._release_once())
        await asyncio.shield(self._releasing)

    async def _release_once(self) -> None:
        self._master.close()  # unwatches first; a waiting read() wakes and sees it closed
        self.kill_processes()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), 2.0)
        status = b""
        with contextlib.suppress(OSError):
            status = self._status.read(65536)
        self._status.close()
        await self._proc.reap_orphan(status)
        await asyncio.to_thread(self._cg.remove)
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kill_processes()
        await self._release()

    def poll(self) -> int | None:
        if not self._proc.done:
            return None
        status = self._proc.status
        return os.waitstatus_to_exitcode(status) if status is not None else -9
