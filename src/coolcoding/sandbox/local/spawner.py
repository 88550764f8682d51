"""Spawning sandbox processes through a small helper process instead of forking the server.

Why: a ``preexec_fn`` makes CPython ``fork()`` the whole server (no ``vfork``), whose cost grows
with its resident memory: ~40 ms of server CPU per judge job at a few hundred MB (issue 10). The
helper (spawner_helper.py, stdlib only, ~10 MB) is started once per event loop thread with a
plain ``Popen`` (which ``vfork``s); it receives each request on a SOCK_SEQPACKET socket (a JSON
``SpawnRequest`` and the fds, SCM_RIGHTS) and clones the child with ``CLONE_PARENT``: the child
is still the server's own child, so reaping, ``wait4`` rusage, the subreaper and bwrap's
``--die-with-parent`` (the parent *thread*: the one that started the helper) are unchanged.

Security: the child does exactly the old pre-exec steps in the old order (join the cgroups,
rlimits, controlling tty, setns, setgroups/setresgid/setresuid) and reports any failure, which
fails the spawn (fail closed). The helper only listens on its end of a socketpair inherited
from the server: no path, nothing else can connect to it.

The server never waits for the helper synchronously (it did: ~19 ms of a blocked event loop
per spawn under load, issue 10): ``Spawner.spawn`` is a coroutine that sends the request and
awaits the answer, which a reader on the event loop hands to the right caller (``_HelperLink``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.loopfd import LoopFd

HELPER = Path(__file__).with_name("spawner_helper.py")
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class SpawnSetup:
    """What the child does before ``execve`` (the old ``preexec_fn``), as data."""

    procs_files: Sequence[str]
    rlimits: Sequence[tuple[int, tuple[int, int]]]
    uid: int
    gid: int
    drop: bool
    controlling_tty: bool = False
    netns_fd: int | None = None  # the sandbox's network namespace, entered before the drop
    # The mount namespace to exec bwrap in (spawnns.py), entered after the cgroups are joined
    # and before the drop; None: the server's own.
    mntns_fd: int | None = None


@dataclass
class SpawnRequest:
    argv: list[str]
    env: dict[str, str]
    targets: list[int]  # the child's fd number for each fd sent (-1: used, not inherited)
    procs_files: list[str]
    rlimits: list[tuple[int, int, int]]
    uid: int
    gid: int
    drop: bool
    controlling_tty: bool
    new_session: bool
    netns_index: int | None = field(default=None)
    mntns_index: int | None = field(default=None)


def spawn_request(
    argv: Sequence[str],
    env: Mapping[str, str],
    setup: SpawnSetup,
    targets: list[int],
    new_session: bool,
    netns_index: int | None,
    mntns_index: int | None = None,
) -> dict[str, object]:
    """``SpawnRequest``'s fields as a plain dict (what the helper reads): built directly, as
    ``dataclasses.asdict`` deep-copies every value (~0.2 ms per spawn on the event loop)."""
    return {
        "argv": list(argv),
        "env": dict(env),
        "targets": targets,
        "procs_files": list(setup.procs_files),
        "rlimits": [(res, soft, hard) for res, (soft, hard) in setup.rlimits],
        "uid": setup.uid,
        "gid": setup.gid,
        "drop": setup.drop,
        "controlling_tty": setup.controlling_tty,
        "new_session": new_session,
        "netns_index": netns_index,
        "mntns_index": mntns_index,
    }


class _HelperLink:
    """One helper process and our end of its socket, watched on one event loop.

    Requests are pipelined: each is sent at once (SCM_RIGHTS dups the fds into the message, so
    the caller may close them as soon as ``send`` returns) and its answer awaited on a future.
    The helper serves them one at a time and SOCK_SEQPACKET keeps their order, so answers come
    back first in, first out; each carries the request's id, checked against the queue's head.
    The socket's fd number is held by a ``LoopFd`` (unwatched before it is closed, see
    loopfd.py): a helper replaced while the loop still watched the old number must not leave a
    stale registration that a later pipe or pidfd with the same number would inherit.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # Popen vfork()s; started from the loop's own thread, which must outlive the
            # sandboxes: bwrap's --die-with-parent follows it (module docstring).
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(HELPER), str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                cwd="/",
                close_fds=True,
            )
        except OSError as e:
            ours.close()
            raise SandboxError(
                "spawn", "The sandbox could not start a process.", f"spawner helper: {e!r}"
            ) from e
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._fd = LoopFd(ours.fileno())
        self._pending: collections.deque[tuple[int, asyncio.Future[dict[str, Any]]]] = (
            collections.deque()
        )
        self._next_id = 0
        self.closed = False
        self._fd.watch_readable(self._on_readable)
        # The helper's death, seen on its pidfd: its socket alone may not report EOF, as a child
        # cloned but not yet exec'd holds a copy of the helper's end.
        self._pidfd = LoopFd(os.pidfd_open(self.proc.pid))
        self._pidfd.watch_readable(lambda: self.close("spawner helper exited while spawning"))

    async def request(self, req: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """Send ``req`` with ``fds``; the helper's answer. ``BrokenPipeError`` / ``OSError``
        when nothing was sent (the caller may retry on another helper); ``SandboxError`` when
        the helper went away after the request was sent (a child may or may not exist)."""
        self._next_id += 1
        rid = self._next_id
        data = json.dumps({**req, "id": rid}).encode()
        while True:
            if self.closed:
                raise BrokenPipeError("spawner helper closed")
            try:
                socket.send_fds(self._sock, [data], fds)
                break
            except BlockingIOError:  # the helper is behind: its socket buffer is full
                await self._fd.writable()
        fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._pending.append((rid, fut))
        return await fut

    def _on_readable(self) -> None:
        while not self.closed:
            try:
                answer = self._sock.recv(MAX_ANSWER)
            except BlockingIOError:
                return
            except OSError as e:
                self.close(f"spawner helper socket: {e!r}")
                return
            if not answer:
                self.close("spawner helper exited while spawning")
                return
            try:
                result = json.loads(answer)
                rid, fut = self._pending.popleft()
                if result.get("id", rid) != rid:
                    raise ValueError(f"answer {result.get('id')} for request {rid}")
            except (ValueError, IndexError, AttributeError) as e:
                self.close(f"spawner helper protocol: {e!r}")
                return
            if fut.done():  # its caller was cancelled meanwhile: nobody will track the child
                _kill_unwanted(result.get("pid"))
            else:
                fut.set_result(result)

    def close(self, why: str) -> None:
        """Stop the helper; every request still waiting fails with ``why``. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._fd.close()  # unwatch, then close the number (exactly once: not the socket too)
        self._sock.detach()
        self._pidfd.close()
        while self._pending:
            _rid, fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(
                    SandboxError("spawn", "The sandbox could not start a process.", why)
                )
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1.0)  # SIGKILLed: at once (and only when a helper is replaced)


def _kill_unwanted(pid: object) -> None:
    """SIGKILL and reap a child whose spawn's caller went away (it is the server's child)."""
    if not isinstance(pid, int) or pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


class Spawner:
    """One helper per event loop thread (see the module docstring on ``--die-with-parent``);
    the event loop never blocks on it: requests are sent at once and answers awaited."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _link(self) -> _HelperLink:
        loop = asyncio.get_running_loop()
        link: _HelperLink | None = getattr(self._local, "link", None)
        if link is not None and not link.closed:
            if link.loop is loop and link.proc.poll() is None:
                return link
            link.close("spawner helper replaced")
        link = _HelperLink(loop)
        self._local.link = link
        return link

    async def spawn(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str],
        setup: SpawnSetup,
        stdin: int,
        stdout: int,
        stderr: int,
        pass_fds: Sequence[int],
        new_session: bool,
    ) -> int:
        """Start ``argv`` as a child of this process; its pid. Raises ``SandboxError``.
        The fds are sent before the first suspension: the caller may close them afterwards."""
        fds = [stdin, stdout, stderr, *pass_fds]
        targets = [0, 1, 2, *pass_fds]
        netns_index = None
        if setup.netns_fd is not None:
            netns_index = len(fds)
            fds.append(setup.netns_fd)
            targets.append(-1)
        mntns_index = None
        if setup.mntns_fd is not None:
            mntns_index = len(fds)
            fds.append(setup.mntns_fd)
            targets.append(-1)
        req = spawn_request(argv, env, setup, targets, new_session, netns_index, mntns_index)
        for attempt in range(2):
            link = self._link()
            try:
                result = await link.request(req, fds)
                break
            except OSError as e:  # not sent (the helper died before): start another once
                link.close(f"spawner: {e!r}")
                if attempt:
                    raise SandboxError(
                        "spawn", "The sandbox could not start a process.", f"spawner: {e!r}"
                    ) from e
        pid: int | None = result.get("pid")
        if result.get("error") or not isinstance(pid, int):
            if pid:  # the child failed before exec and is exiting: it is ours to reap
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)  # noqa: ASYNC222 (it has _exit()ed: its error pipe closed)
            raise SandboxError(
                "spawn",
                "The sandbox could not start a process.",
                f"spawning {argv[0]}: {result.get('error') or 'no pid'}",
            )
        return pid


SPAWNER = Spawner()
