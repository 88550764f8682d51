"""A recursive, debounced inotify watcher of one directory, driven by the event loop (it runs in
each sandbox's agent, ``agent/watch.py``, as the sandbox's uid).

One inotify fd per workspace, read with ``loop.add_reader`` (no thread per session). New
directories get a watch as they appear (and are reported, so the caller scans what was written
into them before the watch existed); a queue overflow asks the caller for a full rescan. Paths are
reported relative to the root, batched: after ``debounce_ms`` of quiet, or ``max_delay_ms`` after
the first change of a batch at the latest, or at once on ``flush()``.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# MODIFY as well as CLOSE_WRITE: a file kept open and appended to (a log) is synced while it grows;
# a burst of writes to one file is one path in the batch. DONT_FOLLOW: never watch through a link.
WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
_EVENT = struct.Struct("iIII")
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 256  # deeper folders cannot be stored anyway (paths.PathRules.max_depth)

# The process's own libc (glibc and musl export inotify_*): ``ctypes.util.find_library`` ran
# ``ldconfig -p`` in a subprocess and imported shutil, lzma and bz2, ~10% of the agent's start.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


@dataclass
class Batch:
    """What changed since the last batch: relative paths, and whether to rescan everything."""

    paths: set[str] = field(default_factory=set)
    new_dirs: set[str] = field(default_factory=set)
    overflow: bool = False


BatchHandler = Callable[[Batch], Awaitable[None]]


class TreeWatcher:
    """inotify on ``root`` and every directory below it; ``handler`` gets debounced batches."""

    def __init__(
        self,
        root: str,
        handler: BatchHandler,
        *,
        debounce_ms: int = 50,
        max_delay_ms: int = 500,
        max_watches: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.root = root
        self.max_watches = max_watches
        self.max_pending = max_pending
        self.watch_limit_hit = False
        self._root_fd = -1
        self._handler = handler
        self._debounce = debounce_ms / 1000
        self._max_delay = max_delay_ms / 1000
        self._fd = -1
        self._wd_path: dict[int, str] = {}  # watch descriptor -> relative dir ("" = root)
        self._path_wd: dict[str, int] = {}
        self._batch = Batch()
        self._first_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._root_fd = os.open(self.root, _DIR_OPEN)
        try:
            self._fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")
        except OSError:
            os.close(self._root_fd)
            self._root_fd = -1
            raise
        self.add_tree("")
        self._loop.add_reader(self._fd, self._on_readable)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._fd >= 0:
            assert self._loop is not None
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
        if self._running is not None:
            await asyncio.shield(self._running)

    @property
    def watch_count(self) -> int:
        return len(self._wd_path)

    # --- watches -----------------------------------------------------------------------------

    def add_tree(self, rel: str) -> None:
        """Watch ``rel`` and every directory below it, never through a symlink at any depth.

        The sandbox renames and replaces folders while we walk (``mv e keep; ln -s / e``), so a
        path string is never resolved again: ``rel`` is opened one component at a time with
        ``O_NOFOLLOW`` below the root's fd, children are opened relative to their parent's fd, and
        each watch is added through ``/proc/self/fd/N``: it lands on exactly the opened inode.
        """
        try:
            top = self._open_dir(rel)
        except OSError:
            return
        # Depth-first with one open fd per level (not one per pending folder).
        stack: list[tuple[int, str, list[str]]] = []
        try:
            if self._add_watch_fd(top, rel):
                stack.append((top, rel, self._child_dirs(top)))
            else:
                os.close(top)
            while stack:
                fd, d, todo = stack[-1]
                if not todo or len(stack) > MAX_DEPTH:
                    os.close(fd)
                    stack.pop()
                    continue
                name = todo.pop()
                try:
                    cfd = os.open(name, _DIR_OPEN, dir_fd=fd)
                except OSError:
                    continue  # gone, or replaced by a link or a file
                child = f"{d}/{name}" if d else name
                if self._add_watch_fd(cfd, child):
                    stack.append((cfd, child, self._child_dirs(cfd)))
                else:
                    os.close(cfd)
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def _open_dir(self, rel: str) -> int:
        fd = os.dup(self._root_fd)
        for name in rel.split("/") if rel else []:
            try:
                nfd = os.open(name, _DIR_OPEN, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nfd
        return fd

    @staticmethod
    def _child_dirs(fd: int) -> list[str]:
        try:
            with os.scandir(fd) as it:
                return [e.name for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def _add_watch_fd(self, fd: int, rel: str) -> bool:
        if self.max_watches is not None and len(self._wd_path) >= self.max_watches:
            self.watch_limit_hit = True
            return False
        # /proc/self/fd/N is a magic link to the opened directory itself: following it (no
        # IN_DONT_FOLLOW here) watches that inode, whatever its path has become meanwhile.
        proc = f"/proc/self/fd/{fd}".encode()
        wd = _libc.inotify_add_watch(self._fd, proc, WATCH_MASK & ~IN_DONT_FOLLOW)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:
                log.warning(
                    "inotify watch limit reached under %s: changes there are found by "
                    "command-end rescans only (raise fs.inotify.max_user_watches)",
                    self.root,
                )
            return False
        old = self._wd_path.get(wd)
        if old is not None and self._path_wd.get(old) == wd:
            del self._path_wd[old]  # the same folder, moved: it is known by its new path now
        self._wd_path[wd] = rel
        self._path_wd[rel] = wd
        return True

    def _forget(self, wd: int) -> None:
        rel = self._wd_path.pop(wd, None)
        if rel is not None and self._path_wd.get(rel) == wd:
            del self._path_wd[rel]

    # --- events ------------------------------------------------------------------------------

    def drain(self, max_reads: int | None = None) -> None:
        """Read the queued events now (non-blocking): all of them, or ``max_reads`` reads of
        256 KiB (the event loop is not held for long while a storm keeps the queue full)."""
        reads = 0
        while self._fd >= 0 and (max_reads is None or reads < max_reads):
            reads += 1
            try:
                data = os.read(self._fd, 256 * 1024)
            except BlockingIOError:
                return
            except OSError:
                log.exception("inotify read failed under %s", self.root)
                return
            self._parse(data)

    def pending(self, rel: str) -> bool:
        """Whether a change to ``rel`` is queued (in the kernel or the current batch)."""
        self.drain()
        return self._batch.overflow or rel in self._batch.paths

    def _parse(self, data: bytes) -> None:
        off = 0
        while off + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, off)
            off += _EVENT.size
            raw = data[off : off + length]
            off += length
            new_dir = bool(mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO))
            if self._batch.overflow and not new_dir and not mask & (IN_IGNORED | IN_Q_OVERFLOW):
                continue  # a rescan is due anyway: only new folders (to watch) matter
            name = os.fsdecode(raw.rstrip(b"\0"))
            if mask & IN_Q_OVERFLOW:
                self._batch.overflow = True
                continue
            if mask & IN_IGNORED:
                self._forget(wd)
                continue
            base = self._wd_path.get(wd)
            if base is None:
                continue
            rel = f"{base}/{name}" if base and name else (name or base)
            if not rel:
                continue  # the root itself
            if new_dir:
                self.add_tree(rel)
            if self._batch.overflow:
                continue  # a rescan is due anyway: no need to remember paths
            self._batch.paths.add(rel)
            if new_dir:
                self._batch.new_dirs.add(rel)
            if self.max_pending is not None and len(self._batch.paths) > self.max_pending:
                # Backpressure: beyond this, one rescan by content hash is cheaper than the events
                # (and the memory stays bounded).
                self._batch = Batch(overflow=True)

    def _on_readable(self) -> None:
        self.drain(max_reads=4)
        if not (self._batch.paths or self._batch.overflow):
            return
        assert self._loop is not None
        now = self._loop.time()
        if self._first_at is None:
            self._first_at = now
        delay = min(self._debounce, max(0.0, self._first_at + self._max_delay - now))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._running is not None and not self._running.done():
            # One batch at a time; the next one is picked up when this finishes.
            return
        self._running = asyncio.ensure_future(self._deliver())

    async def _deliver(self) -> None:
        while not self._closed and (self._batch.paths or self._batch.overflow):
            batch, self._batch = self._batch, Batch()
            self._first_at = None
            try:
                await self._handler(batch)
            except Exception:
                log.exception("sync of a batch under %s failed", self.root)

    async def flush(self) -> None:
        """Deliver everything the kernel has queued so far, now (end of a shell command)."""
        self.drain()
        if self._running is not None and not self._running.done():
            await asyncio.shield(self._running)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._running = asyncio.ensure_future(self._deliver())
        await asyncio.shield(self._running)
