"""Fixtures for tests that start real bubblewrap sandboxes (import them into a test module).

Each runtime gets its own data dir (under /tmp, mode 0711: sandbox uids must pass through it)
and its own cgroup parent, so concurrent test runs and a running server never touch each
other's sandboxes; everything is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxSpec
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.settings import Settings

requires_sandbox = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/bin/bwrap"),
    reason="needs root (per-session uids, cgroups) and bubblewrap",
)


def sandbox_settings(base: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": base,
        "environment": "test",
        "sandbox_cgroup_parent": f"coolcoding-test-{uuid.uuid4().hex[:12]}",
        "sandbox_disk_check_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def runtime() -> AsyncIterator[LocalRuntime]:
    async with make_runtime() as rt:
        yield rt


def new_spec(**kw: object) -> SandboxSpec:
    values: dict[str, object] = {"session_uuid": str(uuid.uuid4())}
    values.update(kw)
    return SandboxSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
async def sandbox(runtime: LocalRuntime) -> LocalSandbox:
    sb = await runtime.start(new_spec(memory_mb=256, pids=64, disk_bytes=16 * 1024 * 1024))
    assert isinstance(sb, LocalSandbox)
    return sb


@asynccontextmanager
async def make_runtime(**overrides: object) -> AsyncIterator[LocalRuntime]:
    """A runtime on its own data dir and cgroup parent, everything removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="cc-sbx-", dir="/tmp"))
    os.chmod(base, 0o711)
    rt = LocalRuntime(sandbox_settings(base, **overrides))
    try:
        yield rt
    finally:
        await rt.shutdown()
        await rt.cleanup_orphans()
        for d in set(rt.host.cgroups.bases.values()):
            if d.is_dir():
                os.rmdir(d)
        shutil.rmtree(base, ignore_errors=True)


EPHEMERAL_DISK = 16 * 1024 * 1024  # like the ``sandbox`` fixture's quota: attack tests unchanged


@pytest.fixture
async def pooled_runtime() -> AsyncIterator[LocalRuntime]:
    """A runtime with a warm pool of 2, filled before the test starts."""
    async with make_runtime(sandbox_pool_size=2, max_workspace_bytes=EPHEMERAL_DISK) as rt:
        await rt.pool.wait_full()
        yield rt


@pytest.fixture
async def plain_runtime() -> AsyncIterator[LocalRuntime]:
    """The same settings as ``pooled_runtime`` without a pool (the normal path)."""
    async with make_runtime(sandbox_pool_size=0, max_workspace_bytes=EPHEMERAL_DISK) as rt:
        yield rt


@pytest.fixture(params=["session", "pooled"])
async def any_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[LocalSandbox]:
    """A session sandbox, or a pooled ephemeral one whose first exec runs in its zygote."""
    if request.param == "session":
        async with make_runtime() as rt:
            sb = await rt.start(new_spec(memory_mb=256, pids=64, disk_bytes=EPHEMERAL_DISK))
            assert isinstance(sb, LocalSandbox)
            yield sb
        return
    async with make_runtime(sandbox_pool_size=1, max_workspace_bytes=EPHEMERAL_DISK) as rt:
        await rt.pool.wait_full()
        async with rt.ephemeral({}, memory_mb=256, pids=64) as box:
            assert isinstance(box, LocalSandbox) and box.warm is not None
            yield box
            if box.warm is None:  # the test ran an exec: it must have been the zygote's
                assert box.pooled_execs == 1
