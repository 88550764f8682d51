"""``KubernetesSandbox``: a session pod reached through its agent (pod IP + per-pod secret).

Everything goes through the agent: terminals (its PTYs), files (its read/write/delete/mkdir, safe
against symlinks), and exec (its exec, wrapped by ``measure`` for limits and measurements). No
host path, no exec API on this path: one TCP connection per use, authenticated both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

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
from coolcoding.sandbox.kubernetes.measure import MARK, NONCE_LEN
from coolcoding.sandbox.kubernetes.objects import WORKSPACE

STATUS_ROOM = 4096  # output allowance for the status line behind the program's output
PYTHON = "/usr/bin/python3"
# Run by path (the agent gives programs no PYTHONPATH); where the sandbox image installs it.
MEASURE_SCRIPT = "/opt/coolcoding/coolcoding/sandbox/kubernetes/measure.py"


def measured_argv(
    argv: list[str], limits: ExecLimits, python: str = PYTHON, script: str = MEASURE_SCRIPT
) -> list[str]:
    opts: list[str] = []
    for flag, value in (("--cpu-s", limits.cpu_s), ("--wall-s", limits.wall_s),
                        ("--memory-mb", limits.memory_mb), ("--fsize", limits.file_size_bytes)):  # fmt: skip
        if value is not None:
            opts += [flag, str(value)]
    return [python, "-S", "-I", script, *opts, "--", *argv]


class AgentExecStream(ExecStream):
    """One measured exec: output as it comes, with the status line held back and parsed."""

    def __init__(self, client: AgentClient, run: ExecRun, nonce: bytes, limits: ExecLimits):
        self.client, self.run, self.limits = client, run, limits
        self.marker = MARK + nonce
        self.out, self.err = bytearray(), bytearray()
        self._held = bytearray()  # stderr not yet emitted: it may hold (part of) the marker
        self._status: bytes | None = None
        self._exit: dict[str, Any] | None = None
        self._queue: asyncio.Queue[tuple[Literal["stdout", "stderr"], bytes] | None] = (
            asyncio.Queue()
        )
        self._pumps = [asyncio.ensure_future(self._pump("stdout")),
                       asyncio.ensure_future(self._pump("stderr"))]  # fmt: skip
        self._done = asyncio.ensure_future(self._finish())

    async def _pump(self, name: Literal["stdout", "stderr"]) -> None:
        stream = self.run.stdout if name == "stdout" else self.run.stderr
        while (item := await stream.get()) is not None:
            if isinstance(item, bytes) and item:
                self._emit(name, item)
        if name == "stdout":  # the exit event follows the stream's end on the stdout channel
            while self._exit is None:
                item = await stream.get()
                if item is None:
                    break
                if isinstance(item, dict) and item.get("event") == "exec.exit":
                    self._exit = item.get("data") or {}

    def _emit(self, name: Literal["stdout", "stderr"], data: bytes) -> None:
        if name == "stdout":
            self.out += data
            self._queue.put_nowait((name, data))
            return
        if self._status is not None:
            return  # nothing the program writes after the status counts
        self._held += data
        at = self._held.find(self.marker)
        if at >= 0:
            self._status = bytes(self._held[at + len(self.marker) :])
            data, self._held = bytes(self._held[:at]), bytearray()
        else:
            keep = len(self.marker) - 1
            data = bytes(self._held[:-keep]) if len(self._held) > keep else b""
            del self._held[: len(data)]
        if data:
            self.err += data
            self._queue.put_nowait(("stderr", data))

    async def _finish(self) -> None:
        try:
            await asyncio.gather(*self._pumps)
        finally:
            if self._status is None and self._held:
                self.err += self._held
                self._queue.put_nowait(("stderr", bytes(self._held)))
            self._queue.put_nowait(None)

    async def chunks(self) -> AsyncIterator[tuple[Literal["stdout", "stderr"], bytes]]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def result(self) -> ExecResult:
        await self._done
        cap = self.limits.output_bytes
        exit_event = self._exit or {}
        try:
            status = json.loads(self._status.split(b"\n", 1)[0]) if self._status else None
        except ValueError:
            status = None
        if status is None:  # the wrapper itself was killed: the agent's wall or output limit
            killed_by = "output" if exit_event.get("output_truncated") else "wall"
            if not exit_event.get("timed_out") and not exit_event.get("output_truncated"):
                raise SandboxError("exec_failed", "The program could not be run.",
                                   f"no status from measure; exit {exit_event}")  # fmt: skip
            status = {"exit_code": None, "signal": 9, "cpu_ms": 0.0, "memory_kb": 0,
                      "wall_ms": exit_event.get("wall_ms", 0.0), "limit_hit": killed_by}  # fmt: skip
        out, err = bytes(self.out), bytes(self.err)
        out_cut = cap is not None and len(out) > cap
        err_cut = cap is not None and len(err) > cap
        hit = status.get("limit_hit") or ("output" if out_cut or err_cut else None)
        return ExecResult(
            exit_code=status.get("exit_code"), signal=status.get("signal"),
            stdout=out[:cap] if cap is not None else out, stderr=err[:cap] if cap is not None else err,
            wall_ms=float(status.get("wall_ms", 0.0)), cpu_ms=float(status.get("cpu_ms", 0.0)),
            memory_kb=int(status.get("memory_kb", 0)), limit_hit=hit,
            stdout_truncated=out_cut, stderr_truncated=err_cut,
        )  # fmt: skip

    async def kill(self) -> None:
        with contextlib.suppress(AgentError, AgentConnectionLost, OSError):
            await self.run.kill()


class KubernetesSandbox(Sandbox):
    workspace_path = WORKSPACE

    def __init__(
        self,
        session_uuid: str,
        address: tuple[str, int],
        secret: bytes,
        *,
        pod: str,
        pod_uid: str,
        disk_bytes: int,
        wait_gone: Callable[[], Awaitable[str]],
        connect_timeout_s: float = 5.0,
        measure: tuple[str, str] = (PYTHON, MEASURE_SCRIPT),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.measure = measure
        self.env = dict(env or {})  # the session's environment (SandboxSpec.env), under each call's
        self.session_uuid = session_uuid
        self.address = address
        self._secret = secret
        self.pod = pod
        self.pod_uid = pod_uid
        self.disk_bytes = disk_bytes
        self._wait_gone = wait_gone
        self.connect_timeout_s = connect_timeout_s
        self.terminals: set[AgentTerminal] = set()
        self._files: AgentClient | None = None
        self._files_lock = asyncio.Lock()

    async def connect_agent(self) -> AgentClient:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                return await AgentClient.connect(self.address, self._secret)
        except (OSError, TimeoutError, AgentConnectionLost) as e:
            raise SandboxError("agent_unreachable", "The sandbox is not reachable.",
                               f"{self.pod} at {self.address}: {e!r}") from e  # fmt: skip

    async def wait_ended(self) -> str:
        return await self._wait_gone()

    async def _client(self) -> AgentClient:
        """One shared connection for file operations (reconnected when lost)."""
        async with self._files_lock:
            if self._files is None or self._files._lost is not None:
                self._files = await self.connect_agent()
            return self._files

    async def open_terminal(
        self, cols: int, rows: int, env: Mapping[str, str] | None = None
    ) -> Terminal:
        client = await self.connect_agent()
        try:
            term = await AgentTerminal.open(client, cols, rows, {**self.env, **(env or {})}, pid=-1,
                                            on_close=self.terminals.discard)  # fmt: skip
        except BaseException:
            await client.close()
            raise
        self.terminals.add(term)
        return term

    @asynccontextmanager
    async def _exec(
        self, argv: list[str], stdin: bytes, limits: ExecLimits | None, cwd: str | None,
        env: Mapping[str, str] | None,
    ) -> AsyncIterator[AgentExecStream]:  # fmt: skip
        lim = limits or ExecLimits()
        nonce = secrets.token_hex(NONCE_LEN // 2).encode()
        client = await self.connect_agent()  # its own connection: closing it ends the exec
        try:
            run = await client.exec_start(
                measured_argv(argv, lim, *self.measure), stdin=nonce + b"\n" + stdin, cwd=cwd,
                env={**self.env, **(env or {})} if self.env or env else None,
                timeout_s=(lim.wall_s + 5) if lim.wall_s is not None else None,
                output_limit_bytes=(lim.output_bytes + STATUS_ROOM)
                if lim.output_bytes is not None else None,
            )  # fmt: skip
            stream = AgentExecStream(client, run, nonce, lim)
            yield stream
        except AgentError as e:
            raise SandboxError("exec_failed", "The program could not be run.", str(e)) from e
        finally:
            await client.close()

    async def exec(
        self, argv: list[str], *, stdin: bytes = b"", limits: ExecLimits | None = None,
        cwd: str | None = None, env: Mapping[str, str] | None = None,
    ) -> ExecResult:  # fmt: skip
        async with self._exec(argv, stdin, limits, cwd, env) as run:
            return await run.result()

    def exec_stream(
        self, argv: list[str], *, stdin: bytes = b"", limits: ExecLimits | None = None,
        cwd: str | None = None, env: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[ExecStream]:  # fmt: skip
        return self._exec(argv, stdin, limits, cwd, env)

    async def write_files(self, files: Mapping[str, bytes | None]) -> None:
        client = await self._client()
        try:
            for path, data in files.items():
                if data is None:
                    await client.delete(path)
                elif path.endswith("/"):
                    await client.mkdir(path.rstrip("/"))
                else:
                    parent = path.rpartition("/")[0]
                    if parent:
                        await client.mkdir(parent)
                    await client.write_file(path, data)
        except AgentError as e:
            raise SandboxError("write_failed", "A file could not be written.", str(e)) from e

    async def read_file(self, path: str) -> bytes:
        client = await self._client()
        try:
            data, _ = await client.read_file(path)
        except AgentError as e:
            raise SandboxError(e.code, "The file could not be read.", str(e)) from e
        return data

    async def disk_usage(self) -> DiskUsage:
        result = await self.exec(["/usr/bin/du", "-s", "-B1", "--one-file-system", "."],
                                 limits=ExecLimits(wall_s=30, output_bytes=4096))  # fmt: skip
        try:
            used = int(result.stdout.split()[0])
        except (IndexError, ValueError) as e:
            raise SandboxError("disk_usage", "The disk usage is not available.",
                               result.stderr.decode(errors="replace")) from e  # fmt: skip
        return DiskUsage(used, self.disk_bytes)

    async def close(self) -> None:
        terms = list(self.terminals)
        await asyncio.gather(*(t.close(kill=False) for t in terms))
        self.terminals.clear()
        if self._files is not None:
            await self._files.close()
            self._files = None
