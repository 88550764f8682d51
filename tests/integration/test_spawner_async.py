"""The spawner (sandbox/local/spawner.py) is awaited, never waited for: the event loop keeps
running while the helper forks, concurrent spawns each get their own child, and a helper that
dies with requests in flight fails them with a clear error instead of hanging them.

A child blocked before exec keeps the helper busy on purpose: its set-up step opens a FIFO for
writing (like joining a cgroup), which blocks until the test opens the reading end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.spawner import SPAWNER, SpawnSetup


def _setup(procs_files: list[str] | None = None) -> SpawnSetup:
    return SpawnSetup(procs_files=procs_files or [], rlimits=[], uid=0, gid=0, drop=False)


async def _spawn(argv: list[str], setup: SpawnSetup | None = None) -> int:
    return await SPAWNER.spawn(argv, env={}, setup=setup or _setup(), stdin=0, stdout=1,
                               stderr=2, pass_fds=(), new_session=True)  # fmt: skip


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


async def _until_blocked() -> int:
    """Until a child of ours waits in ``open()`` of a FIFO for a reader; its pid."""
    for _ in range(500):
        for d in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == os.getpid() and (d / "wchan").read_text() == "wait_for_partner":
                    return int(d.name)
        await asyncio.sleep(0.01)
    raise AssertionError("no child blocked on the FIFO")


async def test_the_event_loop_runs_while_the_helper_is_busy(tmp_path: Path) -> None:
    fifo = tmp_path / "cgroup.procs"
    os.mkfifo(fifo)
    blocked = asyncio.create_task(_spawn(["/bin/sleep", "300"], _setup([str(fifo)])))
    ticks = 0
    for _ in range(20):  # the helper cannot answer until the FIFO has a reader
        await asyncio.sleep(0.005)
        ticks += 1
    assert ticks == 20 and not blocked.done()
    queued = asyncio.create_task(_spawn(["/bin/sleep", "301"]))
    await asyncio.sleep(0.05)
    assert not queued.done()  # behind the blocked one in the helper's queue
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # unblocks the child's open()
    try:
        pids = await asyncio.wait_for(asyncio.gather(blocked, queued), 10)
    finally:
        os.close(reader)
    try:
        assert [_cmdline(p) for p in pids] == [["/bin/sleep", "300"], ["/bin/sleep", "301"]]
    finally:
        for p in pids:
            _reap(p)


async def test_concurrent_spawns_each_get_their_own_child() -> None:
    argvs = [["/bin/sleep", str(1000 + i)] for i in range(24)]
    pids = await asyncio.wait_for(asyncio.gather(*(_spawn(a) for a in argvs)), 30)
    try:
        assert len(set(pids)) == len(argvs)
        for argv, pid in zip(argvs, pids, strict=True):
            assert _cmdline(pid) == argv
            assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # our own child, still running
    finally:
        for p in pids:
            _reap(p)


async def test_a_helper_killed_mid_request_fails_the_waiting_spawns_clearly(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "cgroup.procs"
    os.mkfifo(fifo)
    blocked = asyncio.create_task(_spawn(["/bin/sleep", "302"], _setup([str(fifo)])))
    orphan = await _until_blocked()
    queued = asyncio.create_task(_spawn(["/bin/sleep", "303"]))
    await asyncio.sleep(0)
    helper = SPAWNER._local.link.proc
    os.kill(helper.pid, signal.SIGKILL)
    for task in (blocked, queued):
        with pytest.raises(SandboxError) as err:
            await asyncio.wait_for(task, 10)  # no hang
        assert err.value.reason == "spawn"
        assert "spawner helper exited" in err.value.log_message
    # The child the dead helper cloned is still ours (CLONE_PARENT), blocked before exec: in
    # the server, in a sandbox cgroup that its teardown kills; here, killed by hand.
    _reap(orphan)
    # A new helper serves the next spawn.
    pid = await asyncio.wait_for(_spawn(["/bin/true"]), 10)
    assert os.waitpid(pid, 0)[1] == 0


async def test_a_cancelled_spawn_leaves_no_child_running(tmp_path: Path) -> None:
    fifo = tmp_path / "cgroup.procs"
    os.mkfifo(fifo)
    marker = tmp_path / "ran"
    blocked = asyncio.create_task(_spawn(["/bin/sh", "-c", f"sleep 0.3; touch {marker}"],
                                         _setup([str(fifo)])))  # fmt: skip
    await _until_blocked()
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        # The helper's answer reaches nobody: the child is killed and reaped instead.
        pid = await asyncio.wait_for(_spawn(["/bin/true"]), 10)
        assert os.waitpid(pid, 0)[1] == 0
        await asyncio.sleep(0.6)
    finally:
        os.close(reader)
    assert not marker.exists()
