"""Spawning sandbox processes through a small helper process instead of forking the server.

Why: a ``preexec_fn`` makes CPython ``fork()`` the whole server (no ``vfork``), whose cost grows
with its resident memory: ~40 ms of server CPU per judge job at a few hundred MB (issue 10). The
helper (spawner_helper.py, stdlib only, ~10 MB) is started once per spawning thread with a
plain ``Popen`` (which ``vfork``s); it receives each request on a SOCK_SEQPACKET socket (a JSON
``SpawnRequest`` and the fds, SCM_RIGHTS) and clones the child with ``CLONE_PARENT``: the child
is still the server's own child, so reaping, ``wait4`` rusage, the subreaper and bwrap's
``--die-with-parent`` (the parent *thread*: the one that started the helper) are unchanged.

Security: the child does exactly the old pre-exec steps in the old order (join the cgroups,
rlimits, controlling tty, setns, setgroups/setresgid/setresuid) and reports any failure, which
fails the spawn (fail closed). The helper only listens on its end of a socketpair inherited
from the server: no path, nothing else can connect to it.
"""

from __future__ import annotations

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

from coolcoding.sandbox.base import SandboxError

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


def spawn_request(
    argv: Sequence[str],
    env: Mapping[str, str],
    setup: SpawnSetup,
    targets: list[int],
    new_session: bool,
    netns_index: int | None,
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
    }


class Spawner:
    """One helper per thread that spawns (see the module docstring on ``--die-with-parent``)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _helper(self) -> tuple[socket.socket, subprocess.Popen[bytes]]:
        found: tuple[socket.socket, subprocess.Popen[bytes]] | None = getattr(
            self._local, "helper", None
        )
        if found is not None and found[1].poll() is None:
            return found
        if found is not None:
            found[0].close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
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
        self._local.helper = (ours, proc)
        return ours, proc

    def spawn(
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
        """Start ``argv`` as a child of this process; its pid. Raises ``SandboxError``."""
        fds = [stdin, stdout, stderr, *pass_fds]
        targets = [0, 1, 2, *pass_fds]
        netns_index = None
        if setup.netns_fd is not None:
            netns_index = len(fds)
            fds.append(setup.netns_fd)
            targets.append(-1)
        req = spawn_request(argv, env, setup, targets, new_session, netns_index)
        data = json.dumps(req).encode()
        for attempt in range(2):
            sock, _proc = self._helper()
            try:
                socket.send_fds(sock, [data], fds)
                answer = sock.recv(MAX_ANSWER)
            except OSError as e:
                self._drop_helper()
                if attempt:
                    raise SandboxError(
                        "spawn", "The sandbox could not start a process.", f"spawner: {e!r}"
                    ) from e
                continue
            if answer:
                break
            self._drop_helper()  # the helper died (EOF): start another once
        else:
            raise SandboxError(
                "spawn", "The sandbox could not start a process.", "spawner helper exited"
            )
        result = json.loads(answer)
        pid = result.get("pid")
        if result.get("error"):
            if pid:  # the child failed before exec and exited: it is ours to reap
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            raise SandboxError(
                "spawn",
                "The sandbox could not start a process.",
                f"spawning {argv[0]}: {result['error']}",
            )
        return int(pid)

    def _drop_helper(self) -> None:
        found = getattr(self._local, "helper", None)
        self._local.helper = None
        if found is not None:
            sock, proc = found
            sock.close()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)


SPAWNER = Spawner()
