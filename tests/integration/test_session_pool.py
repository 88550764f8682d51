"""The session pool (sandbox/local/session_pool.py) with real bubblewrap, cgroups, disk images and
agents: a new session created with a reserved uuid binds the pre-started sandbox, whose uid,
cgroup and quota are the session's; anything that does not fit starts cold."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxSpec
from coolcoding.sandbox.local.process import credentials_for
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import make_runtime, requires_sandbox

pytestmark = [pytest.mark.sandbox, requires_sandbox]

QUOTA = 128 * 1024 * 1024
TEMPLATE = SandboxSpec(session_uuid="pool", memory_mb=256, pids=64, disk_bytes=QUOTA)


def spec_for(name: str, **kw: object) -> SandboxSpec:
    return dataclasses.replace(TEMPLATE, session_uuid=name, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def pooled() -> AsyncIterator[LocalRuntime]:
    """A runtime with a session pool of 2, full before the test starts."""
    async with make_runtime(sandbox_session_pool_size=2, sandbox_pool_size=0) as rt:
        rt.keep_session_pool(TEMPLATE)
        await rt.session_pool.wait_full()
        yield rt


async def run(sb: LocalSandbox, script: str) -> str:
    r = await sb.exec(["bash", "-c", script])
    assert r.exit_code == 0, r
    return r.stdout.decode()


async def first_prompt(sb: LocalSandbox) -> str:
    term = await sb.open_terminal(80, 24)
    try:
        await term.write(b"echo ready-$((6*7))\n")
        seen = b""
        async with asyncio.timeout(20):
            while b"ready-42" not in seen:
                seen += await term.read()
        return seen.decode(errors="replace")
    finally:
        await term.close()


async def test_a_new_session_binds_the_sandbox_reserved_for_it(pooled: LocalRuntime) -> None:
    name = pooled.reserve_session_uuid(network=False)
    assert name is not None and str(uuid.UUID(name)) == name
    waiting = {sb.spec.session_uuid for sb in pooled.session_pool.ready._ready}
    assert name not in waiting  # reserved: out of the pool, no other session can get it
    sb = await pooled.start(spec_for(name))
    assert isinstance(sb, LocalSandbox)
    assert sb.spec.session_uuid == name and not sb.stopped
    s = pooled.settings
    creds = credentials_for(name, s.sandbox_uid_base, s.sandbox_uid_count)
    out = await run(sb, "id -u; ls -A /workspace | grep -v lost+found | wc -l; df -B1 /workspace")
    lines = out.splitlines()
    assert int(lines[0]) == creds.uid
    assert lines[1].strip() == "0"  # an empty workspace
    # Its first default terminal is the shell the pool started (pty.spare): it printed its
    # prompt before this terminal was opened, so the replay holds it already.
    client = await sb.connect_agent()
    try:
        await client.pty_open(80, 24, terminal_id="t1")
        att = await client.pty_attach("t1", replay=True)
        first = await anext(aiter(att))
        assert isinstance(first, dict) and first["event"] == "pty.replay"
        assert first["data"]["bytes"] > 0
    finally:
        await client.close()
    assert "ready-42" in await first_prompt(sb)
    assert not (pooled.session_pool.markers / name).exists()  # the session's now
    # The pool refills after a reservation.
    await pooled.session_pool.wait_full()
    assert name not in {sb.spec.session_uuid for sb in pooled.session_pool.ready._ready}
    # A later start of the same session is the normal path (already running).
    assert await pooled.start(spec_for(name)) is sb


async def test_a_reservation_is_given_once_and_unreserve_destroys_it(pooled: LocalRuntime) -> None:
    a = pooled.reserve_session_uuid(network=False)
    b = pooled.reserve_session_uuid(network=False)
    assert a is not None and b is not None and a != b
    assert pooled.reserve_session_uuid(network=True) is None  # network: never pooled
    await pooled.unreserve_session_uuid(a)
    assert a not in pooled.session_pool.live
    assert not (Path(pooled.settings.workspaces_dir) / a).exists()
    # Started anyway (it should not be): a cold sandbox of its own, not the destroyed one.
    sb = await pooled.start(spec_for(a))
    assert isinstance(sb, LocalSandbox) and not sb.stopped
    assert "ready-42" in await first_prompt(sb)


async def test_a_session_whose_spec_differs_starts_cold_with_its_own_limits(
    pooled: LocalRuntime,
) -> None:
    name = pooled.reserve_session_uuid(network=False)
    assert name is not None
    pooled_sb = pooled.session_pool._reserved[name][0]
    spec = spec_for(name, memory_mb=300, disk_bytes=2 * QUOTA)
    sb = await pooled.start(spec)
    assert isinstance(sb, LocalSandbox)
    assert sb is not pooled_sb and pooled_sb.stopped
    limit = await run(sb, "cat /proc/self/cgroup >/dev/null; df -B1 --output=size /workspace")
    size = int(limit.split()[-1])
    assert QUOTA * 1.5 < size < 3 * QUOTA, size  # the session's quota, not the pool's
    mem = [
        Path(d) / f
        for d in sb.cgroup.paths
        for f in ("memory.max", "memory.limit_in_bytes")
        if (Path(d) / f).exists()
    ]
    assert mem and int(mem[0].read_text()) == 300 * 1024 * 1024


async def test_shutdown_removes_pooled_sandboxes_and_their_images(pooled: LocalRuntime) -> None:
    names = set(pooled.session_pool.live)
    assert len(names) == 2
    workspaces = Path(pooled.settings.workspaces_dir)
    assert all((workspaces / n).is_dir() for n in names)
    await pooled.session_pool.close()
    assert not pooled.session_pool.live
    for n in names:
        assert not (workspaces / n).exists()
        assert not pooled.host.cgroups.group(n).paths or not any(
            os.path.exists(p) for p in pooled.host.cgroups.group(n).paths
        )
    assert not os.listdir(pooled.session_pool.markers)


async def test_a_dead_process_pooled_sandboxes_are_removed_by_the_next_one() -> None:
    async with make_runtime(sandbox_session_pool_size=1, sandbox_pool_size=0) as rt:
        rt.keep_session_pool(TEMPLATE)
        await rt.session_pool.wait_full()
        (name,) = rt.session_pool.live
        # This process "dies": its pool forgets the sandbox (which keeps running, as after
        # SIGKILL of the server); a new runtime on the same data dir cleans it up.
        rt.session_pool.live.clear()
        rt.session_pool.ready._ready.clear()
        assert await rt.cleanup_orphans() >= 1
        assert not (Path(rt.settings.workspaces_dir) / name).exists()
        assert rt.images is not None and name not in rt.images.images()
        assert not (rt.session_pool.markers / name).exists()
