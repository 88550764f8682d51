"""Helpers for tests that run the real agent: as a plain subprocess, or as the first process of a
real bubblewrap sandbox (``start_agent``), each with a fresh secret and workspace."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from coolcoding.agent.client import AgentClient, Attachment
from coolcoding.terminal.shell_integration import SANDBOX_SCRIPT_PATH, script_path

TIMEOUT = 15.0


@dataclass
class RunningAgent:
    """Where a test finds its agent: the socket, the secret, the workspace as the host sees it."""

    socket: str
    secret: bytes
    workspace: Path
    kind: str  # "plain" | "sandbox"
    host_pid: int | None = None
    uid: int | None = None

    @property
    def shell(self) -> list[str] | None:
        """argv of an interactive bash with shell integration (the sandbox's login shell)."""
        if self.kind == "sandbox":
            return None  # the agent's default: a login shell sources /etc/profile.d
        return ["/bin/bash", "--noprofile", "--rcfile", script_path(), "-i"]

    async def client(self, secret: bytes | None = None) -> AgentClient:
        return await asyncio.wait_for(
            AgentClient.connect(self.socket, self.secret if secret is None else secret), TIMEOUT
        )


@asynccontextmanager
async def plain_agent(*extra: str) -> AsyncIterator[RunningAgent]:
    base = Path(tempfile.mkdtemp(prefix="cc-agent-"))
    (base / "ws").mkdir()
    secret = secrets.token_bytes(32)
    sock = str(base / "agent.sock")
    r, w = os.pipe()
    os.write(w, secret)
    os.close(w)
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coolcoding.agent", "--socket", sock, "--workspace",
         str(base / "ws"), "--secret-fd", str(r), "--ready-fd", str(ready_w), *extra],
        pass_fds=(r, ready_w),
    )  # fmt: skip
    os.close(r)
    os.close(ready_w)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(os.read, ready_r, 100), TIMEOUT)
        assert line.startswith(b"ready "), line
        yield RunningAgent(sock, secret, base / "ws", "plain")
    finally:
        os.close(ready_r)
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 10)
        except TimeoutError:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


@asynccontextmanager
async def sandbox_agent(*extra: str) -> AsyncIterator[RunningAgent]:
    from coolcoding.sandbox.local.agent_launch import start_agent
    from coolcoding.sandbox.local.sandbox import LocalSandbox
    from tests.integration.conftest_sandbox import make_runtime, new_spec

    limits = dict(zip([a[2:].replace("-", "_") for a in extra[::2]], extra[1::2], strict=True))
    async with make_runtime() as rt:
        spec = new_spec(memory_mb=256, pids=64, disk_bytes=64 * 1024 * 1024,
                        extra_ro_binds={script_path(): SANDBOX_SCRIPT_PATH})  # fmt: skip
        sb = await rt.start(spec)
        assert isinstance(sb, LocalSandbox)
        sock_base = Path(tempfile.mkdtemp(prefix="cc-agent-sock-", dir="/tmp"))
        os.chmod(sock_base, 0o711)
        secret = secrets.token_bytes(32)
        agent = await asyncio.wait_for(
            start_agent(sb, sock_base / "s", secret, limits=limits), TIMEOUT
        )
        try:
            yield RunningAgent(agent.socket_path, secret, sb.workspace, "sandbox",
                               agent.host_pid(), sb.creds.uid)  # fmt: skip
        finally:
            await agent.stop()
            shutil.rmtree(sock_base, ignore_errors=True)


def running_agent(kind: str, *extra: str) -> AsyncIterator[RunningAgent]:
    return (plain_agent if kind == "plain" else sandbox_agent)(*extra)  # type: ignore[return-value]


async def read_until(att: Attachment, needle: bytes, timeout: float = TIMEOUT) -> bytes:
    """Output of ``att`` until ``needle`` appears (events are skipped)."""
    out = bytearray()
    end = time.monotonic() + timeout
    it = aiter(att)
    while needle not in out:
        item = await asyncio.wait_for(anext(it), max(0.01, end - time.monotonic()))
        if isinstance(item, bytes):
            out += item
    return bytes(out)
