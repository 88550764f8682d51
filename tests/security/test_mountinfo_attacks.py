"""A sandbox's /proc/self/mountinfo names no host path: not the data dir (workspaces, the
generated /etc), not the server's source tree (the shell-integration script)."""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import coolcoding
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.terminal.shell_integration import SANDBOX_SCRIPT_PATH, script_path
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    new_spec,
    requires_sandbox,
    runtime,
)

pytestmark = [pytest.mark.sandbox, requires_sandbox]
SOURCE_TREE = str(Path(coolcoding.__file__).resolve().parent.parent)


@pytest.mark.parametrize("network", [False, True])
async def test_mountinfo_shows_no_host_path(runtime: LocalRuntime, network: bool) -> None:
    spec = new_spec(network=network, extra_ro_binds={script_path(): SANDBOX_SCRIPT_PATH})
    sb = await runtime.start(spec)
    assert isinstance(sb, LocalSandbox)
    script = await sb.exec(["cat", SANDBOX_SCRIPT_PATH])
    assert script.stdout == Path(script_path()).read_bytes()  # copied into /etc, not bound
    mountinfo = (await sb.exec(["cat", "/proc/self/mountinfo"])).stdout.decode()
    data_dir = str(runtime.settings.data_dir.resolve())
    leaks = [ln for ln in mountinfo.splitlines() if data_dir in ln or SOURCE_TREE in ln]
    if not os.path.ismount(sb.workspace):
        # A workspace that is a plain directory of the host's file system: a bind mount's
        # root is its path inside that file system, shown as is. Only a workspace that is a
        # file system of its own (the per-workspace image of the disk quota) hides it.
        leaks = [ln for ln in leaks if ln.split()[4] not in ("/workspace", "/app")]
    assert leaks == [], mountinfo


async def test_a_terminal_shows_no_host_path_either(runtime: LocalRuntime) -> None:
    """A terminal runs in the agent's bwrap, which also mounts the agent's code: bound from the
    server's install, the source tree's path showed in a shell's mountinfo."""
    sb = await runtime.start(new_spec())
    assert isinstance(sb, LocalSandbox)
    term = await sb.open_terminal(200, 50)
    try:
        await term.write(b"cat /proc/self/mountinfo; echo MOUNTINFO-$((40+2))\n")
        out = b""
        while b"MOUNTINFO-42" not in out:
            chunk = await asyncio.wait_for(term.read(), 20)
            assert chunk, out
            out += chunk
    finally:
        await term.close()
    text = out.decode(errors="replace")
    assert "/opt/coolcoding" in text  # the agent's code is mounted: this is its mountinfo
    data_dir = str(runtime.settings.data_dir.resolve())
    leaks = [ln for ln in text.splitlines() if data_dir in ln or SOURCE_TREE in ln]
    if not os.path.ismount(sb.workspace):
        leaks = [ln for ln in leaks if "/workspace" not in ln and "/app" not in ln]
    assert leaks == [], text
