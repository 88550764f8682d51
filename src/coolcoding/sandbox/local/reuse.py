"""Reused judge sandboxes: a judge job's sandbox, wiped, serves the next job of the same owner.

What is kept between two jobs is the host side of the sandbox: its workspace directory, its
generated /etc (read-only inside), its session cgroup and its uid, and (``sandbox_judge_keep_netns``)
its loopback-only network namespace, which the sandbox user cannot change and in which no socket
outlives the processes the wipe kills. What is not kept is
everything a job can change from inside: every job still runs in a new bwrap (a new zygote,
zygote.py), so its mount namespace (/tmp, $HOME, /dev/shm are that bwrap's own tmpfs), its pid
namespace, IPC namespace (SysV and POSIX queues), environment, rlimits, umask, cwd, fds and
signal dispositions are new. The wipe (``wipe``) handles the rest, fail-closed:

- every process of the session cgroup is killed (SIGKILL, cgroup-wide, looped against forks)
  and must be gone; every leaf cgroup (``exec-N``) is removed, so no counter (CPU, memory peak,
  pids, OOM kills) carries over: the next job's exec gets a new leaf; the session group's own
  accounting is reset;
- the workspace is emptied as root with fd-relative, no-follow removal (hidden files, files and
  directories without permissions, deep trees, sockets, fifos, symlinks), then checked empty,
  and its own mode, owner, extended attributes and times are reset;
- anything that fails or takes longer than ``sandbox_judge_reuse_wipe_timeout_s`` destroys the
  sandbox instead (never returned half-wiped); the pool lives in memory only, so a sandbox a
  killed server was using or wiping is never reused: the next server's orphan clean-up
  removes it.

Reuse is per owner (the job's user): a job only ever sees sandboxes its own user's earlier
jobs used. ``sandbox_judge_reuse`` turns it off (every job gets a never-used sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any

from coolcoding.sandbox.local.cgroups import Cgroup, rmdir_tree
from coolcoding.sandbox.local.sandbox import LocalSandbox

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class WipeError(Exception):
    pass


def wipe_directory(path: str, uid: int, gid: int, *, chown: bool, mode: int = 0o700) -> None:
    """Remove everything under ``path`` (not following symlinks), check it is empty, and reset
    the directory's own mode, owner, extended attributes and times. Raises on any failure."""
    fd = os.open(path, _DIR_FLAGS)
    try:
        for name in os.listdir(fd):
            st = os.lstat(name, dir_fd=fd)
            if stat.S_ISDIR(st.st_mode):
                # fd-relative and symlink-safe (shutil's _rmtree_safe_fd); raises on errors
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
        left = os.listdir(fd)
        if left:
            raise WipeError(f"{path}: {len(left)} entries left after the wipe")
        for attr in os.listxattr(fd):
            os.removexattr(fd, attr)
        if chown:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.utime(fd, (0, 0))
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) != mode or (chown and (st.st_uid, st.st_gid) != (uid, gid)):
            raise WipeError(f"{path}: mode or owner not reset")
    finally:
        os.close(fd)


def clear_cgroup(group: Cgroup) -> None:
    """Kill every process of ``group`` and its leaves, remove the leaves, reset its accounting;
    raises when a process or a leaf is left."""
    group.kill_all()
    for d in group.paths:
        if not os.path.isdir(d):
            raise WipeError(f"{d}: the session cgroup is gone")
        busy = rmdir_tree(d, keep_top=True)
        if busy:
            raise WipeError(f"{busy[0]}: busy after the kill")
        with os.scandir(d) as it:
            if any(e.is_dir(follow_symlinks=False) for e in it):
                raise WipeError(f"{d}: a leaf cgroup is left")
    if group.all_pids():
        raise WipeError("processes left in the session cgroup")
    group.reset_accounting()
    # Nobody reads the session group's peak (each exec's leaf is measured): no v2 memory.peak
    # fd is kept open while the sandbox waits in the pool.
    group.close()


class ReusePool:
    """Wiped sandboxes by owner, at most ``size`` in all (the oldest owner's go first)."""

    def __init__(
        self,
        size: int,
        wipe: Callable[[LocalSandbox], Coroutine[Any, Any, None]],
        destroy: Callable[[LocalSandbox], Coroutine[Any, Any, None]],
        abandon: Callable[[LocalSandbox], None],
        timeout_s: float,
    ) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self._wipe = wipe
        self._destroy = destroy
        self._abandon = abandon
        self._ready: OrderedDict[str, deque[LocalSandbox]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wiping: set[LocalSandbox] = set()
        self._wiping_by: Counter[str] = Counter()  # owner -> wipes in progress
        self._waiting_by: Counter[str] = Counter()  # owner -> claims waiting for one
        self._changed = asyncio.Event()  # set (and replaced) whenever a wipe ends
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wiped = 0  # counters (tests, benchmarks)
        self.destroyed = 0
        self.reused = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._ready.values())

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            for q in self._ready.values():
                while q:
                    self._abandon(q.popleft())
            self._ready.clear()
            for sb in self._wiping:  # its wipe died with the old loop: never kept
                self._abandon(sb)
            self._wiping = set()
            self._wiping_by.clear()
            self._waiting_by.clear()
            self._changed = asyncio.Event()
            self._tasks = set()
        self._loop = loop

    def _pop_ready(self, owner: str) -> LocalSandbox | None:
        q = self._ready.get(owner)
        while q:
            sb = q.popleft()
            if sb.warm is not None and sb.warm.usable():
                self.reused += 1
                if not q:
                    del self._ready[owner]
                return sb
            self._spawn(self._destroy_counted(sb))
        self._ready.pop(owner, None)
        return None

    async def claim(self, owner: str) -> LocalSandbox | None:
        """A wiped sandbox an earlier job of ``owner`` used, its zygote ready; or ``None``.

        When none is ready but one of ``owner``'s is being wiped (and no other claim waits for
        it), waits for that wipe: a job queued behind its user's previous one (the common case
        under load) then reuses its sandbox instead of taking a new one from the warm pool,
        which would be refilled (a new sandbox's cost) while the wiped one is evicted."""
        self._check_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            sb = self._pop_ready(owner)
            if sb is not None or self._wiping_by[owner] <= self._waiting_by[owner]:
                return sb
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._waiting_by[owner] += 1
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return None
            finally:
                self._waiting_by[owner] -= 1

    def put_back(self, owner: str, sb: LocalSandbox) -> None:
        """``sb``'s job is over: wipe it in the background, then keep it for ``owner``."""
        self._check_loop()
        self._wiping.add(sb)  # counted at once: a claim right after this one waits for it
        self._wiping_by[owner] += 1
        self._spawn(self._wipe_and_keep(owner, sb))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _destroy_counted(self, sb: LocalSandbox) -> None:
        self.destroyed += 1
        try:
            await self._destroy(sb)
        except BaseException:
            self._abandon(sb)
            raise

    async def _wipe_and_keep(self, owner: str, sb: LocalSandbox) -> None:
        try:
            await self._wipe_and_keep_inner(owner, sb)
        except BaseException:  # cancelled (its loop is closing): destroyed without the loop
            self._abandon(sb)
            raise
        finally:
            self._wiping.discard(sb)
            self._wiping_by[owner] -= 1
            if self._wiping_by[owner] <= 0:
                del self._wiping_by[owner]
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def _wipe_and_keep_inner(self, owner: str, sb: LocalSandbox) -> None:
        try:
            if self._closed:
                raise WipeError("the pool is closed")
            await asyncio.wait_for(self._wipe(sb), self.timeout_s)
        except Exception as e:  # incl. TimeoutError: destroyed, never kept half-wiped
            if not isinstance(e, WipeError) or not self._closed:
                log.warning("judge sandbox %s not reused: %r", sb.spec.session_uuid, e)
            await self._destroy_counted(sb)
            return
        if self._closed:
            await self._destroy_counted(sb)
            return
        self.wiped += 1
        while len(self) >= self.size and self._ready:
            oldest = next(iter(self._ready))
            q = self._ready[oldest]
            self._spawn(self._destroy_counted(q.popleft()))
            if not q:
                del self._ready[oldest]
        if self.size <= 0:
            await self._destroy_counted(sb)
            return
        self._ready.setdefault(owner, deque()).append(sb)
        self._ready.move_to_end(owner)

    @property
    def names(self) -> set[str]:
        return {sb.spec.session_uuid for q in self._ready.values() for sb in q}

    async def drain(self) -> None:
        """Until every wipe in progress has ended (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        self._check_loop()
        await self.drain()
        for q in list(self._ready.values()):
            while q:
                await self._destroy_counted(q.popleft())
        self._ready.clear()
        with contextlib.suppress(Exception):
            await self.drain()
