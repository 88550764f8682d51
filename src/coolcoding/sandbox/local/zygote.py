"""A pre-started bwrap whose inner process waits for one program to ``exec`` (the warm pool).

The zygote is bash (no Python in the sandbox) started by the same ``LocalSandbox.spawn`` as any
exec: same argv builder, mounts, uid, cgroup, ``--new-session``, ``--die-with-parent``. It writes
``R`` on its control fd once bwrap's set-up is done, then blocks reading one byte from its
release pipe. The request (cwd, PATH, rlimits, env, argv, NUL-separated) is in its request
memfd by then: bash reads a pipe one byte per ``read(2)`` (about 400 calls for a judge job) but
a seekable file in blocks. It checks that the cwd and the program exist (bwrap's own
``--chdir``/``execvp`` failures have no "exit-code" and raise ``exec_failed``; the zygote reports
them as ``X`` on the control fd instead), closes its three fds and ``exec``s ``/usr/bin/env -i``
(an exec, not a fork: the program keeps the zygote's pid 2, as under bwrap's pid 1 in the normal
path; ``env -i`` because bash's own ``exec`` adds SHLVL and orders the environment by its hash
table, and the program must get exactly the requested environment, in order). The zygote and
env(1) run with ``LC_ALL=C`` (bytes in, bytes out, and no locale files loaded); ``env -i``
drops it, the program gets only the request's environment.

The host sets this exec's cgroup limits, resets the cgroup's accounting, writes the job's stdin
into the zygote's stdin memfd (a shared file description, so the program reads it from offset
0, as in the normal path), writes the request into the request memfd, then one byte into the
release pipe: that is the release, and the exec's wall clock starts there. The zygote applies
the exec's rlimits with ``ulimit`` (the host cannot:
``prlimit`` on another process needs CAP_SYS_RESOURCE, which this server may lack); it can only
lower them, so the pooled bwrap starts with the server's own NPROC/FSIZE/CPU limits, the same
ceiling the normal path's ``setrlimit`` has. Anything the zygote cannot do exactly like bwrap
(``encode_request`` returns None) goes the normal path.

``ZYGOTE_SCRIPT`` is the reference; by default (COOLCODING_SANDBOX_ZYGOTE=auto) the zygote is
zygote.c, the same protocol and request in C (setrlimit, chdir, ``type -P``'s check, then
``execvp`` with exactly the request's environment: no bash, no env(1)), built and loaded by
czygote.py. One difference, towards bwrap: a program that passes the check but whose exec
fails (e.g. found only as a non-executable file in PATH) is reported as ``X`` by the C zygote
(bwrap's normal path: ``exec_failed``), where bash's env(1) exits 126/127 with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coolcoding.sandbox.local.cgroups import Cgroup, CgroupLimits
from coolcoding.sandbox.local.loopfd import LoopFd
from coolcoding.sandbox.local.process import SandboxProcess

if TYPE_CHECKING:
    from coolcoding.sandbox.local.capabilities import SpawnHost, ZygoteBinary

# Bounds bash's array of fields (the request memfd itself could hold more).
MAX_REQUEST_BYTES = 60_000
# The zygote's own environment (on top of the sandbox's): no locale to load, byte semantics.
ZYGOTE_ENV = {"LC_ALL": "C"}
# $1: release pipe, $2: control fd, $3: request memfd. Fields: cwd, PATH, k, k x (ulimit flag,
# soft, hard), n, n env entries, argv. ``ulimit`` lowers the limits the pooled bwrap was
# started with. One redirection for the whole check (each one costs bash an open, dups, fcntls).
ZYGOTE_SCRIPT = r"""go=$1 ctl=$2 req=$3
printf R >&"$ctl"
read -r -n 1 -u "$go" x || exit 1
mapfile -t -d '' -u "$req" f
fail() { printf X >&"$ctl"; exit 127; }
{
  i=3
  for ((k = 0; k < f[2]; k++, i += 3)); do
    ulimit "-${f[i]}" "${f[i+2]}" && ulimit -S "-${f[i]}" "${f[i+1]}" || fail
  done
  n=${f[i]}
  PATH=${f[1]}
  cd -P -- "${f[0]}" && type -P -- "${f[i+1+n]}" || fail
} >/dev/null 2>&1
exec {go}<&- {ctl}>&- {req}<&-
exec /usr/bin/env -i -- "${f[@]:i+1:n}" "${f[@]:i+1+n}"
"""
# The byte the host writes into the release pipe once the request is in the memfd.
RELEASE = b"G"
# rlimit -> (bash ulimit flag, unit in bytes or 1)
ULIMIT_FLAGS: dict[int, tuple[str, int]] = {
    resource.RLIMIT_CORE: ("c", 1024),
    resource.RLIMIT_NPROC: ("u", 1),
    resource.RLIMIT_FSIZE: ("f", 1024),
    resource.RLIMIT_NOFILE: ("n", 1),
    resource.RLIMIT_CPU: ("t", 1),
}


# The pooled bwrap's rlimits: the constant ones only; NPROC, FSIZE and CPU stay the server's
# (its hard limits bound the normal path's setrlimit too) until the zygote lowers them.
POOL_RLIMITS = [(resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NOFILE, (4096, 4096))]


def zygote_command(release_fd: int, control_fd: int, request_fd: int) -> list[str]:
    return ["/bin/bash", "--noprofile", "--norc", "-c", ZYGOTE_SCRIPT, "zygote",
            str(release_fd), str(control_fd), str(request_fd)]  # fmt: skip


def _ulimit_fields(rlimits: Sequence[tuple[int, tuple[int, int]]]) -> list[str] | None:
    out = [str(len(rlimits))]
    for res, limits in rlimits:
        flag, unit = ULIMIT_FLAGS[res]
        out.append(flag)
        for value in limits:
            if value == resource.RLIM_INFINITY:
                out.append("unlimited")
            elif value % unit:
                return None  # not exactly expressible in ulimit's units
            else:
                out.append(str(value // unit))
    return out


def encode_request(
    argv: Sequence[str],
    cwd: str,
    env: Mapping[str, str],
    rlimits: Sequence[tuple[int, tuple[int, int]]],
) -> bytes | None:
    """The zygote's request, or ``None`` when the zygote could not run it exactly like bwrap
    would (the caller then uses the normal path, which also reports such input the same way)."""
    if not argv or "=" in argv[0] or not cwd.startswith("/") or "PATH" not in env:
        return None  # env(1) would read "a=b" as an assignment; no PATH: execvp's default path
    if any(not k or "=" in k for k in env):
        return None
    limits = _ulimit_fields(rlimits)
    if limits is None:
        return None
    # bwrap setenv()s PWD to the --chdir directory: in place if given, else appended.
    pairs = [f"{k}={cwd if k == 'PWD' else v}" for k, v in env.items()]
    if "PWD" not in env:
        pairs.append(f"PWD={cwd}")
    fields = [cwd, env["PATH"], *limits, str(len(pairs)), *pairs, *argv]
    if any("\0" in f for f in fields):
        return None
    data = b"".join(os.fsencode(f) + b"\0" for f in fields)  # as subprocess encodes them
    return data if len(data) <= MAX_REQUEST_BYTES else None


@dataclass
class WarmProcess:
    """A zygote waiting in its exec cgroup, with the host ends of its fds (each a ``LoopFd``:
    closing one twice, here and in the exec that took it over, is harmless)."""

    proc: SandboxProcess
    cgroup: Cgroup
    stdin_fd: LoopFd  # memfd shared with the zygote's fd 0
    stdout_r: LoopFd
    stderr_r: LoopFd
    status_r: LoopFd
    request_fd: LoopFd  # memfd shared with the zygote's request fd (never watched)
    release_w: LoopFd
    control_r: LoopFd
    status_json: bytes = b""
    ready: bool = False

    async def wait_ready(self, timeout_s: float) -> None:
        """Until the zygote wrote ``R`` (bwrap's set-up is done); raises ``OSError`` if not."""
        await asyncio.wait_for(self.control_r.readable(), timeout_s)
        if self.control_r.read(1) != b"R":
            err = b""
            with contextlib.suppress(OSError):
                err = self.stderr_r.read(2000)
            raise OSError(f"the zygote exited during set-up: {err!r}")
        with contextlib.suppress(BlockingIOError):
            self.status_json = self.status_r.read(4096)
        self.ready = True

    def usable(self) -> bool:
        """Alive, and bwrap wrote nothing on the program's stdout/stderr during set-up."""
        if self.proc.done or not self.ready:
            return False
        for fd in (self.stdout_r, self.stderr_r):
            try:
                if fd.read(1):
                    return False
            except BlockingIOError:
                continue
        return True

    def release(self, request: bytes, stdin: bytes) -> None:
        """Start the program. From here the exec owns stdout_r, stderr_r and status_r."""
        if stdin:
            self.stdin_fd.write(stdin)
            os.lseek(self.stdin_fd.fd, 0, os.SEEK_SET)
        if os.pwrite(self.request_fd.fd, request, 0) != len(request):
            raise OSError("short write of the zygote's request")
        self.release_w.write(RELEASE)
        self._close("stdin_fd", "request_fd", "release_w")

    def exec_failed(self) -> bool:
        """True when the zygote found no such cwd or program (reads the control fd's rest)."""
        data = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := self.control_r.read(64):
                data += chunk
        self._close("control_r")
        return b"X" in data

    def _close(self, *names: str) -> None:
        for name in names:
            fd: LoopFd = getattr(self, name)
            fd.close()

    def close_fds(self) -> None:
        self._close(
            "stdin_fd", "request_fd", "release_w", "control_r", "stdout_r", "stderr_r", "status_r"
        )

    def abandon(self) -> None:
        """``discard`` without an event loop (the one that started the zygote is gone)."""
        self.cgroup.kill_all()
        with contextlib.suppress(BlockingIOError, OSError):
            self.status_json += self.status_r.read(4096)
        self.proc.abandon(self.status_json)
        self.close_fds()
        self.cgroup.close()

    async def discard(self) -> None:
        """Kill an unused zygote and reap its bwrap processes."""
        self.proc.terminate_tree(self.cgroup)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 2.0)
        with contextlib.suppress(BlockingIOError, OSError):
            self.status_json += self.status_r.read(4096)
        await self.proc.reap_orphan(self.status_json)
        self.close_fds()
        self.cgroup.close()  # a release that failed after the accounting reset kept an fd


async def start_zygote(
    sb: SpawnHost, timeout_s: float, binary: ZygoteBinary | None = None
) -> WarmProcess:
    """Spawn ``sb``'s first exec leaf (``exec-1``) with a zygote in it and wait until it is
    ready: the C one (czygote.py, zygote.c: same protocol) when ``binary`` is given, else bash."""
    cg = sb.new_leaf("exec", CgroupLimits(sb.spec.memory_mb * 1024 * 1024, sb.spec.pids))
    ours: list[int] = []  # host ends, kept
    theirs: list[int] = []  # the zygote's ends, closed here once bwrap has them

    def pipe(host_reads: bool) -> tuple[int, int]:
        """(host end, zygote end); the host end is non-blocking, the zygote's is blocking."""
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        host, child = (r, w) if host_reads else (w, r)
        os.set_blocking(child, True)
        ours.append(host)
        theirs.append(child)
        return host, child

    try:
        stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
        ours.append(stdin_fd)
        request_fd = os.memfd_create("zygote-request", os.MFD_CLOEXEC)
        ours.append(request_fd)
        out_r, out_w = pipe(host_reads=True)
        err_r, err_w = pipe(host_reads=True)
        status_r, status_w = pipe(host_reads=True)
        control_r, control_w = pipe(host_reads=True)
        release_w, release_r = pipe(host_reads=False)
        fds = (release_r, control_w, request_fd)
        proc = await sb.spawn(
            binary.command(*fds) if binary is not None else zygote_command(*fds),
            cgroup=cg,
            stdin=stdin_fd,
            stdout=out_w,
            stderr=err_w,
            cwd=None,
            env=ZYGOTE_ENV if binary is None else None,  # the C zygote reads no variable
            json_status_fd=status_w,
            # the C zygote's binary: bwrap executes it as /proc/self/fd/N, it closes the fd
            extra_fds=fds if binary is None else (*fds, binary.fd),
            rlimits=POOL_RLIMITS,
        )
    except BaseException:
        for fd in ours + theirs:
            os.close(fd)
        cg.remove()
        raise
    for fd in theirs:
        os.close(fd)
    warm = WarmProcess(
        proc, cg, LoopFd(stdin_fd), LoopFd(out_r), LoopFd(err_r), LoopFd(status_r),
        LoopFd(request_fd), LoopFd(release_w), LoopFd(control_r),
    )  # fmt: skip
    try:
        await warm.wait_ready(timeout_s)
    except BaseException:
        await warm.discard()
        raise
    return warm
