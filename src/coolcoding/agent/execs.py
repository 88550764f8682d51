"""One program run by the agent: argv with stdin, cwd, env, a wall-time limit and an output cap.

Output is streamed to the requesting connection as it comes (stdout and stderr on their own
channels); the end is an ``exec.exit`` event after the last byte. The program gets its own
process group (a new session, so no controlling terminal to TIOCSTI into); at its end, on a limit,
on ``exec.kill`` and when its connection closes the whole group, its session and (while it runs)
its descendant tree are killed, so a background child cannot outlive the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import IO

from coolcoding.agent.procs import descendants, kill_session, kill_tree
from coolcoding.agent.pty import Peer

READ_BYTES = 65536


class AgentExec:
    def __init__(
        self, peer: Peer, stdout_channel: int, stderr_channel: int, *, output_limit: int,
        max_frame: int,
    ) -> None:  # fmt: skip
        self.peer = peer
        self.stdout_channel = stdout_channel
        self.stderr_channel = stderr_channel
        self.output_limit = output_limit
        self.max_frame = min(max_frame, READ_BYTES)
        self.pid = -1
        self.output_bytes = 0
        self.truncated = False
        self.timed_out = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd = -1
        self._reaped = False  # once reaped its pid may be reused: never signalled again
        self._stdout: asyncio.StreamReader | None = None
        self._stderr: asyncio.StreamReader | None = None
        self._stdin: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._t0 = time.monotonic()

    async def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        with_stdin: bool,
        timeout_s: float,
    ) -> None:
        # Spawned and reaped here (not by asyncio's child watcher): ``wait4`` on the program's
        # pidfd gives its resource usage (CPU time, peak RSS), which the exit event reports.
        proc = _spawn(argv, env=env, cwd=cwd, with_stdin=with_stdin)
        self._proc = proc
        self.pid = proc.pid
        loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(proc.pid)
            assert proc.stdout is not None and proc.stderr is not None
            self._stdout = await _reader(loop, proc.stdout)
            self._stderr = await _reader(loop, proc.stderr)
            if proc.stdin is not None:
                transport, protocol = await loop.connect_write_pipe(
                    asyncio.streams.FlowControlMixin, proc.stdin
                )
                self._stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        except BaseException:
            _kill_and_reap(proc)
            raise
        self._task = asyncio.ensure_future(self._run(timeout_s))

    def feed_stdin(self, data: bytes) -> None:
        """Data frames on the stdin channel; an empty one closes stdin."""
        stdin = self._stdin
        if stdin is None or stdin.is_closing():
            return
        if data:
            stdin.write(data)
        else:
            stdin.close()

    async def _wait(self) -> tuple[int, resource.struct_rusage]:
        """The program's wait status and resource usage, once it ended (reaped here)."""
        assert self._pidfd >= 0
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(self._pidfd, readable)
        try:
            while True:
                reaped = _try_reap(self.pid)
                if reaped is not None:
                    self._reaped = True
                    return reaped
                await ended
                ended = loop.create_future()
        finally:
            loop.remove_reader(self._pidfd)

    async def _pump(self, stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        while chunk := await stream.read(self.max_frame):
            room = self.output_limit - self.output_bytes
            if room <= 0:
                continue  # keep draining so the program is not stuck on a full pipe
            if len(chunk) > room:
                chunk = chunk[:room]
                self.truncated = True
                self.kill()
            self.output_bytes += len(chunk)
            self.peer.send_data(channel, chunk)

    async def _run(self, timeout_s: float) -> None:
        proc = self._proc
        assert proc is not None
        pumps = asyncio.gather(
            self._pump(self._stdout, self.stdout_channel),
            self._pump(self._stderr, self.stderr_channel),
        )
        waiting = asyncio.ensure_future(self._wait())
        try:
            await asyncio.wait_for(asyncio.shield(waiting), timeout_s)
        except TimeoutError:
            self.timed_out = True
        self.kill()  # the group: children that outlived the program, or all of it on a timeout
        try:
            status, usage = await waiting
        finally:
            os.close(self._pidfd)
            self._pidfd = -1
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped here: Popen must not wait for it again
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pumps, 5.0)
        if self._stdin is not None:
            self._stdin.close()
        self.peer.send_data(self.stdout_channel, b"")
        self.peer.send_data(self.stderr_channel, b"")
        self.peer.send_event(
            "exec.exit",
            self.stdout_channel,
            {
                "exit_code": code if code is not None and code >= 0 else None,
                "signal": -code if code is not None and code < 0 else None,
                "timed_out": self.timed_out,
                "output_truncated": self.truncated,
                "wall_ms": (time.monotonic() - self._t0) * 1000,
                # The program and the descendants it waited for (wait4's resource usage).
                "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
                "memory_kb": int(usage.ru_maxrss),
            },
        )
        self._done.set()

    def kill(self) -> None:
        if self.pid > 0:
            # While it lives its descendants are found by parent pid, even those that left its
            # session with setsid (once it died, its orphans are the init's): listed first,
            # killed after the group (the program itself dies by the signal, not by a child's).
            alive = self._proc is not None and not self._reaped
            tree = descendants(self.pid) if alive else []
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            kill_session(self.pid)  # members that left the group
            for pid in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if alive:
                kill_tree(self.pid)  # forked while the list was made

    async def wait(self) -> None:
        await self._done.wait()


async def _reader(loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=READ_BYTES * 4, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


def _spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str, with_stdin: bool
) -> subprocess.Popen[bytes]:
    """fork+exec (no wait: the program is reaped by ``_try_reap``)."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )


def _try_reap(pid: int) -> tuple[int, resource.struct_rusage] | None:
    """The wait status and resource usage of ``pid`` if it ended (never blocks)."""
    got, status, usage = os.wait4(pid, os.WNOHANG)
    return (status, usage) if got == pid else None


def _kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
