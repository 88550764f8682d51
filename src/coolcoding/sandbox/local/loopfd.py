"""An fd owned by one object and watched on the event loop: ``close()`` unwatches it first.

An fd closed while the event loop still watches its number leaves a stale registration (both
asyncio's selector loop and uvloop keep it, and the kernel's epoll set has already dropped it).
The next pipe, PTY or pidfd that gets the same number is then never watched: whoever waits on
it waits forever (a terminal without a prompt, a judge worker stuck for good). So every fd the
server watches is held by one ``LoopFd``: waits go through it, and its idempotent ``close()``
removes the reader and the writer, then closes the fd, then wakes every waiter (which sees
``closed``). Nothing else may close the number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable


class LoopFd:
    """One non-blocking fd: read/write without blocking, wait for readiness, close once."""

    __slots__ = ("_fd", "_loop", "_readers", "_reading", "_watch", "_writers", "_writing")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop: asyncio.AbstractEventLoop | None = None  # where the fd is watched
        self._readers: set[asyncio.Future[None]] = set()
        self._writers: set[asyncio.Future[None]] = set()
        self._watch: Callable[[], None] | None = None  # a persistent reader callback
        self._reading = False
        self._writing = False

    def __repr__(self) -> str:
        return f"LoopFd({self._fd})"

    @property
    def fd(self) -> int:
        """The fd number, -1 once closed (only for calls that cannot await in between)."""
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def read(self, n: int) -> bytes:
        """``os.read`` (raises ``BlockingIOError`` when nothing is there); b"" once closed."""
        return os.read(self._fd, n) if self._fd >= 0 else b""

    def write(self, data: bytes | memoryview) -> int:
        """``os.write``; raises ``BrokenPipeError`` once closed."""
        if self._fd < 0:
            raise BrokenPipeError("write to a closed LoopFd")
        return os.write(self._fd, data)

    # --- readiness -----------------------------------------------------------------------

    def when_readable(self) -> asyncio.Future[None]:
        """A future done when the fd is readable or closed; cancelling it stops the watch."""
        return self._waiter(read=True)

    def when_writable(self) -> asyncio.Future[None]:
        return self._waiter(read=False)

    async def readable(self) -> bool:
        """Until the fd is readable (True) or closed (False)."""
        await self.when_readable()
        return self._fd >= 0

    async def writable(self) -> bool:
        await self.when_writable()
        return self._fd >= 0

    def watch_readable(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the fd is readable, until ``close()`` (e.g. a pidfd)."""
        if self._fd < 0:
            return
        if self._watch is not None or self._readers:
            raise RuntimeError(f"{self!r} is already watched for reading")
        self._watch = callback
        self._start(read=True, callback=callback)

    def _waiter(self, read: bool) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._fd < 0:
            fut.set_result(None)
            return fut
        waiters = self._readers if read else self._writers
        if read and self._watch is not None:
            raise RuntimeError(f"{self!r} is watched by a callback")
        waiters.add(fut)
        fut.add_done_callback(lambda f: self._forget(f, read))
        if not (self._reading if read else self._writing):
            self._start(read=read, callback=lambda: self._fire(read))
        return fut

    def _start(self, read: bool, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop and (self._reading or self._writing):
            raise RuntimeError(f"{self!r} is watched by another event loop")
        self._loop = loop
        if read:
            loop.add_reader(self._fd, callback)
            self._reading = True
        else:
            loop.add_writer(self._fd, callback)
            self._writing = True

    def _stop(self, read: bool) -> None:
        loop = self._loop
        if loop is None or self._fd < 0:
            return
        if read and self._reading:
            self._reading = False
            if not loop.is_closed():
                loop.remove_reader(self._fd)
        elif not read and self._writing:
            self._writing = False
            if not loop.is_closed():
                loop.remove_writer(self._fd)

    def _fire(self, read: bool) -> None:
        """Ready: stop watching (level-triggered: it would fire again until read) and wake."""
        self._stop(read)
        for fut in list(self._readers if read else self._writers):
            if not fut.done():
                fut.set_result(None)

    def _forget(self, fut: asyncio.Future[None], read: bool) -> None:
        waiters = self._readers if read else self._writers
        waiters.discard(fut)
        if not waiters and self._watch is None:
            self._stop(read)

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Unwatch, close, wake the waiters. Idempotent."""
        if self._fd < 0:
            return
        self._stop(read=True)
        self._stop(read=False)
        self._watch = None
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):
            os.close(fd)
        for fut in [*self._readers, *self._writers]:
            if not fut.done():
                fut.set_result(None)
