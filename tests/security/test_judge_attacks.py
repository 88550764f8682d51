"""Hostile judge jobs: each ends with the right verdict and leaves nothing behind (no process, no
cgroup, no file), and cannot reach the network or the host's files."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.execution.judge import Judge
from coolcoding.execution.verdicts import Verdict
from coolcoding.sandbox.local.runtime import LocalRuntime
from tests.integration.judge_programs import DAEMON_MARK
from tests.integration.test_judge import job, judge_settings, running_judge

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    data_dir = Path(tempfile.mkdtemp(prefix="cc-judge-sec-"))
    data_dir.chmod(0o711)
    settings = judge_settings(data_dir, sandbox_cgroup_parent=f"cc-test-jsec-{os.getpid()}")
    with running_judge(settings) as j:
        yield j
    shutil.rmtree(data_dir, ignore_errors=True)


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


def assert_nothing_left(judge: Judge, marker: str | None = None) -> None:
    runtime = judge.runtime()
    assert isinstance(runtime, LocalRuntime)
    eph = runtime.state_dir / "ephemeral"
    pooled = runtime.pool_names()  # the warm pool's unused sandboxes are not leftovers
    assert not eph.exists() or {p.name for p in eph.iterdir()} <= pooled, "ephemeral files left"
    assert set(runtime.host.cgroups.leftovers()) <= pooled, "cgroups left behind"
    if marker:
        assert processes_with(marker) == [], "a process outlived its job"


@pytest.mark.parametrize("language", ["python", "javascript", "bash", "c"])
async def test_a_detached_daemon_does_not_outlive_the_job(judge: Judge, language: str) -> None:
    r = await judge.judge(job(judge, language, "daemon\n"))
    assert r.verdict == Verdict.ACCEPTED, (r.message, r.stderr)
    assert r.stdout.strip() == b"bye"
    assert_nothing_left(judge, DAEMON_MARK)


@pytest.mark.parametrize("language", ["python", "bash", "c"])
async def test_a_fork_bomb_is_contained(judge: Judge, language: str) -> None:
    t = time.monotonic()
    r = await judge.judge(job(judge, language, "fork\n", limits={"cpu_s": 1, "wall_s": 2}))
    contained = {Verdict.TIME_LIMIT, Verdict.RUNTIME_ERROR, Verdict.MEMORY_LIMIT}
    if language == "bash":
        # bash's `f | f &` returns at once: its top level may exit 0 while the forks go on; they
        # must not outlive the job (checked below), whatever the verdict.
        contained.add(Verdict.ACCEPTED)
    assert r.verdict in contained, r.message
    assert time.monotonic() - t < 10
    assert_nothing_left(judge)


@pytest.mark.parametrize("language", ["python", "javascript", "bash", "c", "cpp", "java", "rust"])
async def test_reading_stdin_that_is_not_there_ends_at_once(judge: Judge, language: str) -> None:
    r = await judge.judge(job(judge, language, "eof\n", limits={"wall_s": 5}))
    assert r.verdict == Verdict.ACCEPTED, (r.message, r.stderr)
    assert r.stdout == b"eof\n" and r.wall_ms is not None and r.wall_ms < 3000


@pytest.mark.parametrize("mode", ["loop", "sleep", "mem", "print"])
async def test_runaway_programs_leave_nothing_behind(judge: Judge, mode: str) -> None:
    limits = {"cpu_s": 0.5, "wall_s": 1, "memory_mb": 32, "output_bytes": 4096}
    r = await judge.judge(job(judge, "c", f"{mode}\n", limits=limits))
    assert r.verdict != Verdict.ACCEPTED
    assert_nothing_left(judge)


async def test_no_network_and_no_host_files(judge: Judge) -> None:
    src = """\
import os, socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("network")
except OSError:
    print("no network")
print("shadow" if os.path.exists("/etc/shadow") else "no shadow")
try:
    print(os.listdir("/root"))
except OSError:
    print("no root")
print(sorted(os.listdir("/workspace")))
"""
    r = await judge.judge(job(judge, "python", "", source=src))
    assert r.stdout.decode().split("\n")[:4] == [
        "no network",
        "no shadow",
        "no root",
        "['main.py']",
    ], r.stderr
