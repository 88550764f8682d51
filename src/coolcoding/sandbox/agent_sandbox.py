"""``AgentSandbox``: a running sandbox reached only through its agent (``Runtime.connect``).

A replica that does not hold a session's lease serves that session's terminals and runs through
this handle: it owns nothing of the sandbox (no process, cgroup, mount or file on this host is
touched), it only opens connections to the agent, so the same class works whatever the transport
(the local runtime's unix socket, a TCP address or a forwarded stream: ``Connector``). Terminals
are the agent's PTYs (``AgentTerminal``); an exec is the agent's ``exec.start`` inside the
sandbox, bounded by the sandbox's own limits plus the exec's wall time and output cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as signal_mod
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Literal

from coolcoding.agent.client import AgentClient, AgentConnectionLost, AgentError, ExecRun
from coolcoding.sandbox.agent_terminal import AgentTerminal
from coolcoding.sandbox.base import (
    DiskUsage,
    ExecLimits,
    ExecResult,
    ExecStream,
    Sandbox,
    SandboxError,
    Terminal,
)

Connector = Callable[[], Awaitable[AgentClient]]
WORKSPACE = "/workspace"
KILLED = int(signal_mod.SIGKILL)


def _unreachable(exc: BaseException) -> SandboxError:
    return SandboxError(
        "agent_unreachable",
        "The sandbox's agent does not answer; stop and start the sandbox again.",
        repr(exc),
    )


class _AgentExec(ExecStream):
    """One ``exec.start`` on its own agent connection (closing it kills the program)."""

    def __init__(self, client: AgentClient, run: ExecRun, output_cap: int | None) -> None:
        self.client = client
        self.run = run
        self.output_cap = output_cap
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.started = time.monotonic()
        self._exit: dict[str, object] | None = None

    async def chunks(self) -> AsyncIterator[tuple[Literal["stdout", "stderr"], bytes]]:
        queue: asyncio.Queue[tuple[Literal["stdout", "stderr"], bytes] | None] = asyncio.Queue()

        async def pump(name: Literal["stdout", "stderr"]) -> None:
            stream = self.run.stdout if name == "stdout" else self.run.stderr
            try:
                while (item := await stream.get()) is not None:
                    if isinstance(item, bytes) and item:
                        await queue.put((name, item))
                if name == "stdout":  # the exit event follows the end of stdout
                    while self._exit is None:
                        item = await stream.get()
                        if isinstance(item, dict):
                            data = item.get("data")
                            self._exit = data if isinstance(data, dict) else {}
                        elif item is None:  # the connection was lost
                            self._exit = {}
            finally:
                await queue.put(None)

        tasks = [asyncio.ensure_future(pump("stdout")), asyncio.ensure_future(pump("stderr"))]
        try:
            ended = 0
            while ended < 2:
                got = await queue.get()
                if got is None:
                    ended += 1
                    continue
                name, data = got
                (self.stdout if name == "stdout" else self.stderr).extend(data)
                yield got
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def result(self) -> ExecResult:
        if self._exit is None:
            async for _ in self.chunks():
                pass
        ex = self._exit or {}
        code, sig = ex.get("exit_code"), ex.get("signal")
        timed_out, truncated = bool(ex.get("timed_out")), bool(ex.get("output_truncated"))
        wall = ex.get("wall_ms")
        if not ex:  # the agent went away mid-run
            raise SandboxError("agent_lost", "The sandbox stopped while the program ran.")
        return ExecResult(
            exit_code=code if isinstance(code, int) else None,
            signal=sig if isinstance(sig, int) else (None if isinstance(code, int) else KILLED),
            stdout=bytes(self.stdout),
            stderr=bytes(self.stderr),
            wall_ms=float(wall) if isinstance(wall, int | float) else 0.0,
            cpu_ms=_number(ex.get("cpu_ms")),
            memory_kb=int(_number(ex.get("memory_kb"))),
            limit_hit="wall" if timed_out else ("output" if truncated else None),
            stdout_truncated=truncated,
            stderr_truncated=truncated,
        )

    async def kill(self) -> None:
        with contextlib.suppress(AgentError, AgentConnectionLost, OSError):
            await self.run.kill()


class AgentSandbox(Sandbox):
    """A sandbox this process did not start and does not own: every operation is a request to
    its agent. ``adopted`` stays False: nothing here is materialized or recovered."""

    workspace_path = WORKSPACE

    def __init__(
        self,
        session_uuid: str,
        connector: Connector,
        *,
        exec_timeout_s: float,
        disk_bytes: int,
        pid: int | None = None,
    ) -> None:
        self.session_uuid = session_uuid
        self._connector = connector
        self.exec_timeout_s = exec_timeout_s
        self.disk_bytes = disk_bytes
        self.pid = pid
        self.terminals: set[AgentTerminal] = set()

    async def connect_agent(self) -> AgentClient:
        try:
            return await self._connector()
        except (OSError, AgentError, AgentConnectionLost, ValueError) as exc:
            raise _unreachable(exc) from exc

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[AgentClient]:
        client = await self.connect_agent()
        try:
            yield client
        except (AgentConnectionLost, OSError) as exc:
            raise _unreachable(exc) from exc
        finally:
            await client.close()

    async def open_terminal(
        self, cols: int, rows: int, env: Mapping[str, str] | None = None
    ) -> Terminal:
        client = await self.connect_agent()
        try:
            term = await AgentTerminal.open(
                client, cols, rows, env, pid=self.pid or -1, on_close=self.terminals.discard
            )
        except BaseException:
            await client.close()
            raise
        self.terminals.add(term)
        return term

    @asynccontextmanager
    async def _exec_stream(
        self,
        argv: list[str],
        stdin: bytes,
        limits: ExecLimits | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
    ) -> AsyncIterator[ExecStream]:
        limits = limits or ExecLimits()
        wall = min(limits.wall_s or self.exec_timeout_s, self.exec_timeout_s)
        async with self._client() as client:
            try:
                run = await client.exec_start(
                    argv, stdin=stdin, cwd=cwd or WORKSPACE, env=env, timeout_s=wall,
                    output_limit_bytes=limits.output_bytes,
                )  # fmt: skip
            except AgentError as exc:
                raise SandboxError(
                    "exec_failed", f"The program could not start: {exc.message}", str(exc)
                ) from exc
            stream = _AgentExec(client, run, limits.output_bytes)
            try:
                yield stream
            finally:
                await stream.kill()

    def exec_stream(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[ExecStream]:
        return self._exec_stream(argv, stdin, limits, cwd, env)

    async def exec(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        async with self.exec_stream(argv, stdin=stdin, limits=limits, cwd=cwd, env=env) as s:
            return await s.result()

    async def write_files(self, files: Mapping[str, bytes | None]) -> None:
        async with self._client() as client:
            try:
                for path, data in files.items():
                    if data is None:
                        await client.delete(path)
                    elif path.endswith("/"):
                        await client.mkdir(path.rstrip("/"))
                    else:
                        await client.write_file(path, data)
            except AgentError as exc:
                raise SandboxError("write_failed", exc.message, str(exc)) from exc

    async def read_file(self, path: str) -> bytes:
        async with self._client() as client:
            try:
                data, _ = await client.read_file(path)
            except AgentError as exc:
                raise SandboxError("read_failed", exc.message, str(exc)) from exc
            return data

    async def disk_usage(self) -> DiskUsage:
        async with self._client() as client:
            entries = await client.list_tree("")
        used = sum(int(e.get("size", 0)) for e in entries if e.get("type") == "file")
        return DiskUsage(used, self.disk_bytes)

    async def wait_ended(self) -> str:
        """Returns once the agent stops answering (checked every few seconds)."""
        while True:
            await asyncio.sleep(2.0)
            try:
                async with asyncio.timeout(5):
                    async with self._client() as client:
                        if await client.ping():
                            continue
            except (SandboxError, TimeoutError, AgentError):
                pass
            return "The sandbox's agent stopped (its terminals are gone); start it again."


def _number(value: object) -> float:
    """A figure of the agent's exit event (0 where an older agent sent none)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
