"""A judge job's per-job path on the server runs on the event loop where a thread hop costs
more than the work (settings ``sandbox_inline_write_bytes``, ``sandbox_inline_usage_entries``;
the exec leaf's removal): a job in a reused sandbox sends none of its source write, its
workspace measurement, its leaf cgroup's removal or its sandbox's wipe to a thread; bigger
workspaces still go to a thread, and the results are the same."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local.cgroups import CgroupLimits
from coolcoding.sandbox.local.files import disk_usage_bytes, disk_usage_bytes_upto
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import EPHEMERAL_DISK, make_runtime, requires_sandbox

pytestmark = [pytest.mark.sandbox, requires_sandbox]
LIMITS = ExecLimits(cpu_s=5, wall_s=10, memory_mb=256, pids=64)
SOURCE = b"import sys\nprint(sys.stdin.read().upper(), end='')\n"


def count_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions the running loop sends to its thread pool from now on (``to_thread`` and
    ``run_in_executor`` alike)."""
    calls: list[str] = []
    loop = asyncio.get_running_loop()
    real = loop.run_in_executor

    def run_in_executor(executor: Any, fn: Callable[..., Any], *args: Any) -> Any:
        named = fn.args[0] if isinstance(fn, functools.partial) and fn.args else fn  # to_thread
        calls.append(getattr(named, "__qualname__", repr(named)))
        return real(executor, fn, *args)

    monkeypatch.setattr(loop, "run_in_executor", run_in_executor)
    return calls


async def judged(rt: LocalRuntime, files: dict[str, bytes]) -> bytes:
    async with rt.ephemeral(files, owner="user:hops", memory_mb=256, pids=64) as box:
        assert isinstance(box, LocalSandbox)
        r = await box.exec(["python3", "main.py"], stdin=b"abc", limits=LIMITS,
                           cwd=box.workspace_path)  # fmt: skip
    await rt.reuse.drain()
    return r.stdout


@pytest.mark.parametrize("inline", [True, False])
async def test_a_reused_sandbox_job_takes_no_thread_hop(
    inline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = {} if inline else {"sandbox_inline_write_bytes": 0, "sandbox_inline_usage_entries": 0}
    async with make_runtime(sandbox_pool_size=1, sandbox_judge_reuse_size=2,
                            max_workspace_bytes=EPHEMERAL_DISK, **off) as rt:  # fmt: skip
        await rt.pool.wait_full()
        assert await judged(rt, {"main.py": SOURCE}) == b"ABC"  # its sandbox is then reused
        hops = count_hops(monkeypatch)
        assert await judged(rt, {"main.py": SOURCE}) == b"ABC"
        assert rt.reuse.reused >= 1
        if inline:
            assert hops == []  # the wipe for the next job too
        else:
            assert "WorkspaceFiles.apply" in hops and "disk_usage_bytes" in hops
            assert any(h.endswith("_wipe_ephemeral.<locals>.wipe") for h in hops)
        # Over the thresholds: a thread again, same result.
        hops.clear()
        big = {"main.py": SOURCE, **{f"d/f{i}": b"x" * 1000 for i in range(70)}}
        assert await judged(rt, big) == b"ABC"
        assert "WorkspaceFiles.apply" in hops and "disk_usage_bytes" in hops
        assert any(h.endswith("_wipe_ephemeral.<locals>.wipe") for h in hops)


def test_a_bounded_measurement_gives_up_past_its_entries_and_leaks_no_fd(tmp_path: Any) -> None:
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
        for j in range(5):
            (tmp_path / f"d{i}" / f"f{j}").write_bytes(b"x" * 5000)
    fds = set(os.listdir("/proc/self/fd"))
    assert disk_usage_bytes_upto(str(tmp_path), 30) == disk_usage_bytes(str(tmp_path)) > 0
    assert disk_usage_bytes_upto(str(tmp_path), 29) is None  # 30 entries
    assert disk_usage_bytes_upto(str(tmp_path), 7) is None  # stops inside a subdirectory
    assert set(os.listdir("/proc/self/fd")) == fds


async def test_a_wipe_with_a_process_left_or_many_files_goes_to_a_thread() -> None:
    async with make_runtime(sandbox_pool_size=0, max_workspace_bytes=EPHEMERAL_DISK) as rt:
        async with rt.ephemeral({"a": b"x"}, memory_mb=256, pids=64) as box:
            assert isinstance(box, LocalSandbox)
            assert rt._wipe_is_small(box)
            leaf = box.new_leaf("exec", CgroupLimits())
            proc = subprocess.Popen(["sleep", "30"])
            try:
                for procs in leaf.procs_files:
                    Path(procs).write_text(str(proc.pid))
                assert not rt._wipe_is_small(box)  # the kill may have to wait for it
            finally:
                proc.kill()
                proc.wait()
            leaf.remove()
            assert rt._wipe_is_small(box)
            await box.write_files({f"f{i}": b"" for i in range(70)})
            assert not rt._wipe_is_small(box)
