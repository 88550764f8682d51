"""A PTY terminal: the master stays on the host, the slave is the sandboxed shell's tty.

All I/O on the master is non-blocking and driven by the event loop (``add_reader``/``add_writer``);
nothing blocks the loop. Reading is demand-driven (one read per ``read()`` call), so a shell
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
from coolcoding.sandbox.local.process import SandboxProcess


def set_winsize(fd: int, cols: int, rows: int) -> None:
    cols = max(1, min(int(cols), 1000))
    rows = max(1, min(int(rows), 1000))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LocalTerminal(Terminal):
    def __init__(
        self,
        proc: SandboxProcess,
        master_fd: int,
        cgroup: Cgroup,
        status_fd: int,
        on_close: Callable[[LocalTerminal], None] | None = None,
    ) -> None:
        self._status_fd = status_fd  # bwrap's --json-status-fd (to reap its inner process)
        self._on_close = on_close
        self._proc = proc
        self._fd = master_fd
        self._cg = cgroup
        self._closed = False
        self._notices: list[bytes] = []
        self._read_lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def notice(self, message: str) -> None:
        """Queue a server message for the reader (e.g. why the sandbox was stopped)."""
        self._notices.append(f"\r\n[coolcoding] {message}\r\n".encode())

    async def read(self) -> bytes:
        loop = asyncio.get_running_loop()
        async with self._read_lock:
            while True:
                if self._fd < 0:
                    return self._notices.pop(0) if self._notices else b""
                try:
                    data = os.read(self._fd, 65536)
                except BlockingIOError:
                    if self._proc.done:
                        # The shell exited; its pid namespace (and so every slave holder) goes
                        # with it. Give the kernel a moment to hang up, then call it the end.
                        await asyncio.sleep(0.02)
                        try:
                            data = os.read(self._fd, 65536)
                        except OSError:
                            data = b""
                        if data:
                            return data
                        await self._release()
                        continue
                    ready: asyncio.Future[None] = loop.create_future()
                    loop.add_reader(self._fd, _wake, ready)
                    closer: asyncio.Future[object] = asyncio.ensure_future(self._proc.wait())
                    waiters: set[asyncio.Future[object]] = {ready, closer}  # type: ignore[arg-type]
                    try:
                        # The master also wakes up (EIO) when the last slave holder exits.
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        closer.cancel()
                        if self._fd >= 0:
                            loop.remove_reader(self._fd)
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
                more = os.read(self._fd, 65536)
            except OSError:  # EAGAIN (nothing more now) or EIO (hung up: the next read says so)
                break
            if not more:
                break
            chunks.append(more)
            total += len(more)
        return first if len(chunks) == 1 else b"".join(chunks)

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view and self._fd >= 0:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self._fd, _wake, ready)
                try:
                    await asyncio.wait_for(ready, 5.0)
                except TimeoutError:
                    return  # the shell does not read its input; drop instead of piling up
                finally:
                    if self._fd >= 0:
                        loop.remove_writer(self._fd)
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise

    async def resize(self, cols: int, rows: int) -> None:
        if self._fd >= 0:
            set_winsize(self._fd, cols, rows)  # the kernel sends SIGWINCH to the foreground

    def kill_processes(self) -> None:
        self._proc.terminate_tree(self._cg)

    async def _release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        self.kill_processes()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), 2.0)
        if self._status_fd >= 0:
            status = b""
            with contextlib.suppress(OSError):
                status = os.read(self._status_fd, 65536)
            os.close(self._status_fd)
            self._status_fd = -1
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
