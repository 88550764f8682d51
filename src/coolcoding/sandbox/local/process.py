"""Spawning bwrap as the sandbox uid, inside the right cgroups, with rlimits; reaping it.

The child (forked by the spawner helper, spawner.py, never by the server itself) runs these
steps before ``execve(bwrap)``: join the cgroups by writing "0" to their ``cgroup.procs`` (so
bwrap and everything it starts are accounted from the first instruction), set the rlimits,
optionally take the terminal as controlling tty, enter the network namespace, then drop every
privilege: ``setgroups([])``, ``setresgid``, ``setresuid`` (in this order: after setresuid we
could no longer change groups). bwrap then runs unprivileged and builds its namespaces in a user
namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import re
import resource
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.cgroups import Cgroup
from coolcoding.sandbox.local.loopfd import LoopFd
from coolcoding.sandbox.local.spawner import SPAWNER, SpawnSetup

PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Credentials:
    """Who the sandbox runs as. ``drop`` is False when the server itself is not root: then the
    sandbox runs as the server's own uid (it cannot switch), which is still unprivileged."""

    uid: int
    gid: int
    drop: bool


def credentials_for(session_uuid: str, uid_base: int, uid_count: int) -> Credentials:
    """A stable per-session uid: ``uid_base + hash(uuid) % uid_count`` (root server), or the
    server's own uid (unprivileged server)."""
    if os.geteuid() != 0:
        return Credentials(os.getuid(), os.getgid(), drop=False)
    # A stable hash (not Python's salted hash()): the same session keeps its uid across restarts,
    # so the files it owns stay its own. Collisions (two sessions, one uid) only share the
    # RLIMIT_NPROC budget: namespaces keep them apart otherwise.
    h = int.from_bytes(hashlib.sha256(session_uuid.encode()).digest()[:8], "big")
    uid = uid_base + h % uid_count
    if uid == 0 or uid_base <= 0:
        raise SandboxError("config", "Bad sandbox uid configuration.", f"uid base {uid_base}")
    return Credentials(uid, uid, drop=True)


def rlimits_for(
    *, nproc: int, fsize: int, cpu_s: float | None, nofile: int = 4096
) -> list[tuple[int, tuple[int, int]]]:
    """rlimits as a floor under the cgroup limits. NPROC counts per uid (per session here)."""
    out = [
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NPROC, (nproc, nproc)),
        (resource.RLIMIT_FSIZE, (fsize, fsize)),
        (resource.RLIMIT_NOFILE, (nofile, nofile)),
    ]
    if cpu_s is not None:
        soft = max(1, int(-(-cpu_s // 1)))  # ceil: SIGXCPU at the soft limit,
        out.append((resource.RLIMIT_CPU, (soft, soft + 1)))  # SIGKILL one second later
    return out


def spawn_setup(
    creds: Credentials,
    procs_files: Sequence[str],
    rlimits: Sequence[tuple[int, tuple[int, int]]],
    *,
    controlling_tty: bool,
    netns_fd: int | None = None,
    mntns_fd: int | None = None,
) -> SpawnSetup:
    """What the child does before exec (spawner.py): join the cgroups, rlimits, the tty,
    ``netns_fd`` (the sandbox's own network namespace, network.py, entered while still root),
    then drop every privilege."""
    return SpawnSetup(
        procs_files=list(procs_files),
        rlimits=list(rlimits),
        uid=creds.uid,
        gid=creds.gid,
        drop=creds.drop,
        controlling_tty=controlling_tty,
        netns_fd=netns_fd,
        mntns_fd=mntns_fd,
    )


def become_subreaper() -> None:
    """Make orphaned sandbox processes children of the server (see ``reap_orphan``) instead of
    the host's init, which may not reap them (e.g. a container's pid 1)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class SandboxProcess:
    """The host-side bwrap process: spawned through the helper, reaped through a pidfd on the loop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._pidfd = LoopFd(os.pidfd_open(pid))
        self.status: int | None = None  # raw wait status once reaped
        self.rusage: resource.struct_rusage | None = None
        self._exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pidfd.watch_readable(self._on_exit)

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        *,
        env: Mapping[str, str],
        setup: SpawnSetup,
        stdin: int,
        stdout: int,
        stderr: int,
        pass_fds: Sequence[int],
        new_session: bool,
    ) -> SandboxProcess:
        """Spawn ``argv``; the fds may be closed once this returns (or raises)."""
        # Spawned from the event loop's thread on purpose: bwrap's --die-with-parent uses
        # PR_SET_PDEATHSIG, which fires when the *thread* that forked exits (spawner.py).
        pid = await SPAWNER.spawn(
            argv,
            env=env,
            setup=setup,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=pass_fds,
            new_session=new_session,
        )
        return cls(pid)

    def _on_exit(self) -> None:
        with contextlib.suppress(ChildProcessError):
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid == 0:
                return
            self.status, self.rusage = status, rusage
        self._pidfd.close()
        if not self._exited.done():
            self._exited.set_result(None)

    def terminate_tree(self, cgroup: Cgroup) -> None:
        """Kill everything in ``cgroup`` but bwrap itself, which then reaps its child and exits;
        SIGKILL it too if it has not after a moment."""
        cgroup.kill_all(spare=self.pid)
        if not self._exited.done():
            asyncio.get_running_loop().call_later(0.2, self.kill)

    async def reap_orphan(self, status_json: bytes) -> None:
        """Reap bwrap's inner process (the sandbox's pid 1), named in ``--json-status-fd``.

        The host-side bwrap may exit before its child finishes exiting; the child is then
        re-parented to the nearest subreaper. The server is one (``become_subreaper``), so the
        child becomes ours and, if nobody waited for it, would stay a zombie.
        """
        m = re.search(rb'"child-pid":\s*(\d+)', status_json)
        if m is None:
            return
        child = int(m.group(1))
        for _ in range(50):
            try:
                pid, _status = os.waitpid(child, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG)
            except ChildProcessError:
                return  # not (or no longer) our child: reaped by its own parent
            if pid:
                return
            await asyncio.sleep(0.002)
        # Still exiting (a loaded host: tearing down its namespaces): wait for it on a pidfd
        # rather than leave a zombie, which would keep counting against pids.max and NPROC.
        try:
            pidfd = LoopFd(os.pidfd_open(child))
        except ProcessLookupError:
            return
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pidfd.readable(), 10.0)
        finally:
            pidfd.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG)

    def abandon(self, status_json: bytes) -> None:
        """Reap, blocking, an already SIGKILLed bwrap and its pid 1 when the event loop that
        spawned them is gone (their pidfd reader went with it)."""
        for pid in (self.pid, *(int(m) for m in re.findall(rb'"child-pid":\s*(\d+)', status_json))):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._pidfd.close()  # unwatched on its (closed) loop first, if that loop still exists

    async def wait(self) -> int | None:
        await asyncio.shield(self._exited)
        return self.status

    @property
    def done(self) -> bool:
        return self._exited.done()

    def kill(self) -> None:
        """SIGKILL the host-side bwrap (prefer ``terminate_tree``: see ``Cgroup.kill_all``)."""
        if not self._exited.done() and not self._pidfd.closed:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd.fd, signal.SIGKILL)
