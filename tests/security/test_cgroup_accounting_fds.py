"""No file descriptor per judged job: the server's fd count is the same before and after many
jobs (accepted, failing, killed by each limit, cancelled, a zygote release that fails), pooled and
reused ones included.

A pooled exec's accounting reset keeps a memory.peak fd on cgroup v2 (cgroups.py); a group
dropped before its peak is read used to keep that fd for good, one per job. This machine's
memory controller is bound to cgroup v1 (no per-fd peak), so the ``v2-peak`` case simulates v2
where the runtime opens memory.peak (``Cgroup._reset_peak``) with a memfd of a peak: the same
ownership paths (who reads, closes, removes) with a real runtime, bubblewrap and cgroups. On a
v2 host both cases run the kernel's own memory.peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.execution.judge import Judge, JudgeJob
from coolcoding.execution.verdicts import Verdict
from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local.cgroups import Cgroup
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.zygote import WarmProcess
from tests.integration.test_judge import job, judge_settings, running_judge

pytestmark = pytest.mark.sandbox

ROUNDS = 2
PEAK_MEMFD = "simulated-memory.peak"
JOBS: list[tuple[str, str, dict[str, float], Verdict]] = [
    ("print('hello')", "", {}, Verdict.ACCEPTED),
    ("raise SystemExit(3)", "", {}, Verdict.RUNTIME_ERROR),
    ("while True: pass", "", {"cpu_s": 0.3, "wall_s": 5}, Verdict.TIME_LIMIT),
    ("import time; time.sleep(5)", "", {"cpu_s": 2, "wall_s": 0.4}, Verdict.TIME_LIMIT),
    ("x = bytearray(400 << 20)", "", {"memory_mb": 32}, Verdict.MEMORY_LIMIT),
    ("print('y' * (1 << 20))", "", {"output_bytes": 1024}, Verdict.OUTPUT_LIMIT),
    ("print(input())", "stdin line\n", {}, Verdict.ACCEPTED),
]


def fd_targets() -> Counter[str]:
    """What this process's fds point at (pipes and sockets without their inode numbers)."""
    out: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out[re.sub(r":\[\d+\]$", "", os.readlink(f"/proc/self/fd/{fd}"))] += 1
    return out


@pytest.fixture(params=["kernel", "v2-peak"])
def judge(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Judge]:
    if request.param == "v2-peak":
        real = Cgroup._reset_peak

        def reset_peak(self: Cgroup) -> int:
            if self.version == 2:
                return real(self)
            fd = os.memfd_create(PEAK_MEMFD, os.MFD_CLOEXEC)
            os.write(fd, b"1048576\n")
            return fd

        monkeypatch.setattr(Cgroup, "_reset_peak", reset_peak)
    data_dir = Path(tempfile.mkdtemp(prefix="cc-judge-fds-"))
    data_dir.chmod(0o711)
    settings = judge_settings(
        data_dir,
        sandbox_cgroup_parent=f"cc-test-fds-{os.getpid()}",
        sandbox_pool_size=1,
        sandbox_judge_reuse_size=2,
    )
    with running_judge(settings) as j:
        yield j
    shutil.rmtree(data_dir, ignore_errors=True)


def scoped(j: JudgeJob, scope: str) -> JudgeJob:
    """``j`` as a job of ``scope`` (the reuse owner; "": no reuse, the warm pool)."""
    return dataclasses.replace(j, cache_scope=scope)


async def one_round(judge: Judge, rt: LocalRuntime, fail_release: list[bool]) -> None:
    for scope in ("user:fds", ""):  # reused sandboxes, then the warm pool's
        for source, stdin, limits, verdict in JOBS:
            r = await judge.judge(scoped(job(judge, "python", stdin, source=source,
                                             limits=limits), scope))  # fmt: skip
            assert r.verdict == verdict, (source, r.verdict, r.message, r.stderr)
        await rt.pool.wait_full()
        fail_release[0] = True  # the next pooled release fails: the normal path runs it
        r = await judge.judge(scoped(job(judge, "python", "", source="print('hello')"), scope))
        assert r.verdict == Verdict.ACCEPTED, (r.message, r.stderr)
        assert not fail_release[0], "no pooled release happened"
    # An exec killed while it streams, and one whose caller is cancelled.
    await rt.pool.wait_full()
    async with rt.ephemeral({}, owner="user:fds", memory_mb=256, pids=64) as box:
        async with box.exec_stream(["sh", "-c", "echo go; sleep 30"]) as run:
            async for _ in run.chunks():
                break
        task = asyncio.ensure_future(box.exec(["sleep", "30"], limits=ExecLimits(wall_s=60)))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle(rt: LocalRuntime) -> None:
    await rt.reuse.drain()
    await rt.pool.wait_full()
    for _ in range(50):  # background clean-ups (reaping, cgroup removal) of the last jobs
        if not rt._removals:
            break
        await asyncio.sleep(0.02)


async def test_no_fd_is_left_per_judged_job(judge: Judge, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = judge.runtime()
    assert isinstance(rt, LocalRuntime)
    fail_release = [False]
    real_release = WarmProcess.release

    def release(self: WarmProcess, request: bytes, stdin: bytes) -> None:
        if fail_release[0]:
            fail_release[0] = False
            raise OSError("injected: the release failed")
        real_release(self, request, stdin)

    monkeypatch.setattr(WarmProcess, "release", release)
    await one_round(judge, rt, fail_release)  # warms up what is opened once (pools, caches)
    await settle(rt)
    before = fd_targets()
    for _ in range(ROUNDS):
        await one_round(judge, rt, fail_release)
    await settle(rt)
    after = fd_targets()
    jobs = ROUNDS * (2 * (len(JOBS) + 1) + 2)
    assert after.total() <= before.total(), f"after {jobs} jobs: {after - before} more"
    assert not [t for t in after if "memory.peak" in t or PEAK_MEMFD in t]
