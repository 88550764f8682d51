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
import signal
import time
from collections.abc import Mapping, Sequence

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
        self._proc: asyncio.subprocess.Process | None = None
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
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self._proc.pid
        self._task = asyncio.ensure_future(self._run(timeout_s))

    def feed_stdin(self, data: bytes) -> None:
        """Data frames on the stdin channel; an empty one closes stdin."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        if data:
            proc.stdin.write(data)
        else:
            proc.stdin.close()

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
            self._pump(proc.stdout, self.stdout_channel),
            self._pump(proc.stderr, self.stderr_channel),
        )
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            self.timed_out = True
        self.kill()  # the group: children that outlived the program, or all of it on a timeout
        await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pumps, 5.0)
        code = proc.returncode
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
            },
        )
        self._done.set()

    def kill(self) -> None:
        if self.pid > 0:
            # While it lives its descendants are found by parent pid, even those that left its
            # session with setsid (once it died, its orphans are the init's): listed first,
            # killed after the group (the program itself dies by the signal, not by a child's).
            alive = self._proc is not None and self._proc.returncode is None
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
