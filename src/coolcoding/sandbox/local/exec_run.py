"""One ``exec``: spawn in its own cgroup, read output within limits, measure, clean up.

Limits are enforced on both sides: the kernel (cgroup memory/pids/cpu quota, RLIMIT_CPU,
RLIMIT_FSIZE) and the caller (wall clock, total CPU of all processes, output size), which kills
the whole exec cgroup. Nothing outlives ``result()``: the program runs as pid 1's child in its
own pid namespace (everything in it dies with it) and the cgroup is swept and removed anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Literal

from coolcoding.sandbox.base import ExecLimits, ExecResult, ExecStream, SandboxError
from coolcoding.sandbox.local.cgroups import Cgroup, CgroupLimits
from coolcoding.sandbox.local.loopfd import LoopFd
from coolcoding.sandbox.local.process import SandboxProcess
from coolcoding.sandbox.local.zygote import WarmProcess

if TYPE_CHECKING:
    from coolcoding.sandbox.local.capabilities import SpawnHost

StreamName = Literal["stdout", "stderr"]
CHUNK = 64 * 1024
DEFAULT_OUTPUT_BYTES = 16 * 1024 * 1024  # when the caller sets none: still never unbounded
_CPU_CHECK_MIN_S = 0.01  # the CPU limit's checks (``_watch_cpu``): at most 100 a second
_CPU_CHECK_MAX_S = 1.0  # and at least one


def _exit_of(status: int | None) -> tuple[int | None, int | None]:
    """(exit_code, signal). bwrap reports a child killed by signal N as exit 128+N, like a shell
    (so a program calling exit(137) reads as SIGKILL; the same ambiguity as ``$?``)."""
    if status is None:
        return None, signal.SIGKILL
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    code = os.WEXITSTATUS(status)
    if 128 < code <= 128 + 64:
        return None, code - 128
    return code, None


class LocalExec(ExecStream):
    def __init__(
        self,
        sandbox: SpawnHost,
        argv: list[str],
        *,
        stdin: bytes,
        limits: ExecLimits | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
        stream: bool,
        stdin_fd: int | None = None,
        stdout_fd: int | None = None,
    ) -> None:
        self._sb = sandbox
        # The caller's fds as the program's stdin/stdout instead of a memfd / a captured pipe
        # (interactive judging: pipes to another sandbox's program). Never closed here.
        self._stdin_fd = stdin_fd
        self._stdout_fd = stdout_fd
        self._argv = argv
        self._stdin = stdin
        self._limits = limits or ExecLimits()
        self._cwd = cwd
        self._env = env
        self._queue: asyncio.Queue[tuple[StreamName, bytes] | None] | None = (
            asyncio.Queue(maxsize=64) if stream else None
        )
        self._bufs: dict[StreamName, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._truncated: dict[StreamName, bool] = {"stdout": False, "stderr": False}
        self._limit_hit: str | None = None
        self._cg: Cgroup | None = None
        self._proc: SandboxProcess | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._status_r: LoopFd | None = None
        self._pipes: list[LoopFd] = []  # stdout, stderr: owned by the pumps, closed by _finish
        self._result: ExecResult | None = None
        self._finishing: asyncio.Task[ExecResult] | None = None
        self._t0 = 0.0
        self._warm: WarmProcess | None = None
        self._pumps = 2  # the first tasks: stdout's and stderr's readers (stderr's only)
        self.ended_at: float | None = None  # perf_counter() when the program was seen to end

    async def start(self) -> None:
        sb, lim = self._sb, self._limits
        spec = sb.spec
        mem = lim.memory_mb if lim.memory_mb is not None else spec.memory_mb
        pids = lim.pids if lim.pids is not None else spec.pids
        self._cg = sb.new_leaf("exec", CgroupLimits(memory_bytes=mem * 1024 * 1024, pids=pids))
        child_fds: list[int] = []
        ours: list[int] = []
        try:
            if self._stdin_fd is not None:
                stdin_fd = self._stdin_fd
            else:
                stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)  # a file: no writer
                child_fds.append(stdin_fd)
                if self._stdin:
                    os.write(stdin_fd, self._stdin)
                    os.lseek(stdin_fd, 0, os.SEEK_SET)
            for _ in range(3 if self._stdout_fd is None else 2):
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                os.set_blocking(w, True)
                ours.append(r)
                child_fds.append(w)
            if self._stdout_fd is None:
                out_r, err_r, status_r = ours
                out_w, err_w, status_w = child_fds[-3:]
            else:
                out_r, (err_r, status_r) = -1, ours
                out_w, (err_w, status_w) = self._stdout_fd, child_fds[-2:]
            self._t0 = time.perf_counter()
            self._proc = await sb.spawn(
                self._argv,
                cgroup=self._cg,
                stdin=stdin_fd,
                stdout=out_w,
                stderr=err_w,
                cwd=self._cwd,
                env=self._env,
                cpu_s=lim.cpu_s,
                file_size=lim.file_size_bytes,
                json_status_fd=status_w,
            )
        except BaseException:
            for fd in ours:
                os.close(fd)
            self._cg.remove()
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
        self._status_r = LoopFd(status_r)
        self._begin(LoopFd(out_r) if out_r >= 0 else None, LoopFd(err_r))

    async def start_warm(self, warm: WarmProcess, request: bytes) -> None:
        """Release a pooled zygote (see zygote.py) with this exec's limits instead of spawning."""
        sb, lim = self._sb, self._limits
        spec = sb.spec
        mem = lim.memory_mb if lim.memory_mb is not None else spec.memory_mb
        pids = lim.pids if lim.pids is not None else spec.pids
        self._cg, self._proc, self._warm = warm.cgroup, warm.proc, warm
        self._status_r = warm.status_r
        try:
            self._cg.set_limits(CgroupLimits(memory_bytes=mem * 1024 * 1024, pids=pids))
            self._cg.reset_accounting()
            self._t0 = time.perf_counter()
            warm.release(request, self._stdin)
        except BaseException:
            self._proc.terminate_tree(self._cg)
            self._cg.close()  # a peak fd of the reset: the exec never reads it
            warm.close_fds()
            raise
        self._begin(warm.stdout_r, warm.stderr_r)

    def _begin(self, out_r: LoopFd | None, err_r: LoopFd) -> None:
        lim = self._limits
        loop = asyncio.get_running_loop()
        out_limit = lim.output_bytes if lim.output_bytes is not None else DEFAULT_OUTPUT_BYTES
        self._pipes = [err_r] if out_r is None else [out_r, err_r]
        self._tasks = [loop.create_task(self._pump(err_r, "stderr", out_limit))]
        if out_r is not None:
            self._tasks.insert(0, loop.create_task(self._pump(out_r, "stdout", out_limit)))
        self._pumps = len(self._tasks)
        if lim.wall_s is not None:
            self._timers.append(loop.call_later(lim.wall_s, self._kill_for, "wall"))
        if lim.cpu_s is not None:
            self._tasks.append(loop.create_task(self._watch_cpu(lim.cpu_s)))

    def _kill_for(self, reason: str) -> None:
        if self._limit_hit is None:
            self._limit_hit = reason
        self.kill_now()

    def kill_now(self) -> None:
        if self._proc is not None and self._cg is not None:
            self._proc.terminate_tree(self._cg)

    async def _pump(self, src: LoopFd, name: StreamName, limit: int) -> None:
        buf = self._bufs[name]
        try:
            while True:
                try:
                    data = src.read(CHUNK)
                except BlockingIOError:
                    await src.readable()  # False once closed: the next read() says b""
                    continue
                if not data:
                    return
                room = limit - len(buf)
                if len(data) > room:
                    data = data[: max(room, 0)]
                    self._truncated[name] = True
                buf += data
                if data and self._queue is not None:
                    await self._queue.put((name, data))
                if self._truncated[name]:
                    self._kill_for("output")  # stop reading: never buffer unbounded output
                    return
        finally:
            src.close()

    async def _watch_cpu(self, cpu_s: float) -> None:
        """RLIMIT_CPU is per process; this bounds the CPU time of all of them together.

        The group spends at most one CPU-second per second per CPU of the host: each check
        sleeps until the earliest moment the rest of the budget could be spent (at least
        ``_CPU_CHECK_MIN_S``, at most ``_CPU_CHECK_MAX_S``). A job waiting on I/O or a
        terminal costs one check a second (it was ten: the worker's main cost while a job
        runs), and the kill comes within ``_CPU_CHECK_MIN_S`` per CPU of the limit (it was
        0.1 s per CPU)."""
        assert self._cg is not None
        cpus = os.cpu_count() or 1
        left_s = cpu_s  # the exec's group counts from 0: nothing to read before the first sleep
        while True:
            await asyncio.sleep(min(_CPU_CHECK_MAX_S, max(_CPU_CHECK_MIN_S, left_s / cpus)))
            left_s = cpu_s - self._cg.cpu_ns() / 1e9
            if left_s <= 0:
                self._kill_for("cpu")
                return

    async def chunks(self) -> AsyncIterator[tuple[StreamName, bytes]]:
        if self._queue is None:
            raise RuntimeError("chunks() needs a streaming exec")
        finisher = self._ensure_finishing()
        get: asyncio.Future[tuple[StreamName, bytes] | None] | None = None
        try:
            while True:
                get = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait({get, finisher}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    item = get.result()
                    if item is None:
                        return
                    yield item
                else:
                    get.cancel()
                    while not self._queue.empty():
                        item = self._queue.get_nowait()
                        if item is None:
                            return
                        yield item
                    return
        finally:
            # A consumer that stops early (break, cancel, an error) closes this generator while
            # it waits: the queue's getter must not stay behind as a pending task.
            if get is not None:
                get.cancel()

    def _ensure_finishing(self) -> asyncio.Task[ExecResult]:
        if self._finishing is None:
            self._finishing = asyncio.get_running_loop().create_task(self._finish())
        return self._finishing

    async def result(self) -> ExecResult:
        if self._queue is not None:
            # Drain what the caller did not consume so the pumps never block on a full queue.
            async for _ in self.chunks():
                pass
        return await asyncio.shield(self._ensure_finishing())

    async def kill(self) -> None:
        self._kill_for("killed")

    async def _finish(self) -> ExecResult:
        assert self._cg is not None
        try:
            return await self._measure()
        finally:
            # The memory.peak fd a pooled exec's reset kept (cgroups.py): read and closed on
            # the way, but not when the wait was cancelled or a read raised before it.
            self._cg.close()

    async def _measure(self) -> ExecResult:
        assert self._proc is not None and self._cg is not None
        status = await self._proc.wait()
        self.ended_at = time.perf_counter()
        wall_ms = (self.ended_at - self._t0) * 1000
        for timer in self._timers:
            timer.cancel()
        # e.g. a daemon that escaped the pid namespace's teardown race; not waiting for the
        # killed to finish exiting (the cleanup's ``remove`` does, off the caller's latency).
        self._cg.kill_all(wait=False)
        # The workspace is measured in a thread while the output and the counters are read.
        over_quota = asyncio.ensure_future(self._sb.over_quota())
        pumps = asyncio.gather(*self._tasks[: self._pumps])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pumps, 2.0)
        for t in self._tasks:
            t.cancel()
        for pipe in self._pipes:
            pipe.close()  # a pump cancelled before it ever ran never closes its own
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        cpu_ms = self._cg.cpu_ns() / 1e6
        peak = self._cg.memory_peak_bytes()
        if peak is None:  # v2 kernel without memory.peak: the largest reaped process instead
            peak = (self._proc.rusage.ru_maxrss * 1024) if self._proc.rusage else 0
        oom = self._cg.oom_kills() > 0
        pids_hit = self._cg.pids_limit_events() > 0
        # No second kill_all here: the one above emptied the group (nothing outside it can
        # join it), and the cleanup's ``remove`` kills again before it removes the group.
        status_json = self._read_status()
        # Everything is dead by now; reaping bwrap's exiting pid 1 and removing the cgroup
        # (which waits for that exit) happen after the result, off the caller's latency.
        self._sb.track_cleanup(self._cleanup(status_json))
        quota_exceeded = await over_quota
        program_ran = b'"exit-code"' in status_json
        if self._warm is not None and self._warm.exec_failed():
            program_ran = False  # no such cwd or program: what bwrap's own failure reports
            self._bufs["stderr"] += b"zygote: cannot chdir to the cwd or find the program"
        exit_code, sig = _exit_of(status)
        if not program_ran and self._limit_hit is None and sig is None:
            raise SandboxError(
                "exec_failed",
                "The sandbox failed to start the program.",
                f"bwrap failed: {bytes(self._bufs['stderr'][-2000:])!r}",
            )
        limit = self._limit_hit
        lim = self._limits
        if limit != "output":
            if oom:
                limit = "memory"
            elif sig == signal.SIGXFSZ or quota_exceeded:
                limit = "disk"
            elif sig == signal.SIGXCPU or (
                lim.cpu_s is not None and sig == signal.SIGKILL and cpu_ms >= lim.cpu_s * 1000
            ):
                limit = "cpu"
            elif pids_hit:
                limit = "pids"
        self._result = ExecResult(
            exit_code=exit_code,
            signal=sig,
            stdout=bytes(self._bufs["stdout"]),
            stderr=bytes(self._bufs["stderr"]),
            wall_ms=wall_ms,
            cpu_ms=cpu_ms,
            memory_kb=peak // 1024,
            limit_hit=limit if limit != "killed" else None,
            stdout_truncated=self._truncated["stdout"],
            stderr_truncated=self._truncated["stderr"],
        )
        return self._result

    async def _cleanup(self, status_json: bytes) -> None:
        assert self._proc is not None and self._cg is not None
        await self._proc.reap_orphan(status_json)
        # Everything in the leaf is reaped by now: usually one rmdir per directory, done here;
        # a process still exiting (a busy group) is waited for in a thread.
        if not self._cg.try_remove():
            await asyncio.to_thread(self._cg.remove)

    def _read_status(self) -> bytes:
        """bwrap's --json-status-fd: "child-pid" once its namespaces exist, "exit-code" once the
        program ran and exited (bwrap's own set-up errors, e.g. a failed mount, have none)."""
        data = self._warm.status_json if self._warm is not None else b""
        if self._status_r is not None:
            with contextlib.suppress(BlockingIOError):
                while chunk := self._status_r.read(4096):
                    data += chunk
            self._status_r.close()
        return data
