"""The spawner helper (sandbox/local/spawner.py) forks sandbox processes for the server: what
the server's own fork did must still hold. Attacks: an fd of the helper or the server leaking
into the sandbox (the helper's socket would let a program ask for processes outside its
sandbox), a set-up step that fails being skipped (fail open), the helper killed."""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.cgroups import CgroupLimits
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.sandbox.local.spawner import SPAWNER, SpawnSetup
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    new_spec,
    requires_sandbox,
    runtime,
)

pytestmark = [pytest.mark.sandbox, requires_sandbox]


async def test_no_fd_of_the_helper_or_server_reaches_the_program(runtime: LocalRuntime) -> None:
    sb = await runtime.start(new_spec())
    res = await sb.exec(["/bin/sh", "-c", "ls /proc/self/fd; readlink /proc/self/fd/*"])
    names = res.stdout.decode().split()
    fds = sorted(int(n) for n in names if n.isdigit())
    # 0-2 and the fd ls/readlink itself opens for the listing; nothing else, no socket.
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, res.stdout
    assert b"socket:" not in res.stdout, res.stdout


async def test_the_sandbox_process_is_the_servers_child_with_its_limits(
    runtime: LocalRuntime,
) -> None:
    sb = await runtime.start(new_spec())
    assert isinstance(sb, LocalSandbox)
    res = await sb.exec(
        ["/bin/bash", "-c", "id -u; ulimit -c; head -c 20000000 /dev/urandom | md5sum"]
    )
    lines = res.stdout.decode().split()
    assert int(lines[0]) == sb.creds.uid != 0, res
    assert lines[1] == "0", res  # RLIMIT_CORE, set in the child before exec
    assert res.cpu_ms > 5, res  # counted in the exec's cgroup: joined before exec


async def test_file_size_limit_kills_with_sigxfsz_not_ignored(runtime: LocalRuntime) -> None:
    """Python ignores SIGXFSZ and exec keeps ignored signals: the helper must restore it, or
    a program over RLIMIT_FSIZE would get EFBIG and go on instead of being stopped."""
    from coolcoding.sandbox.base import ExecLimits

    sb = await runtime.start(new_spec())
    res = await sb.exec(["/bin/sh", "-c", "head -c 100000 /dev/zero > big; echo rc=$?"],
                        limits=ExecLimits(file_size_bytes=10_000))  # fmt: skip
    assert res.stdout.strip() == f"rc={128 + signal.SIGXFSZ}".encode(), res


async def test_a_failing_setup_step_fails_the_spawn(tmp_path: Path) -> None:
    """Fail closed: a cgroup that cannot be joined means no process, never one outside it."""
    marker = tmp_path / "ran"
    setup = SpawnSetup(procs_files=[str(tmp_path / "no-such-cgroup" / "cgroup.procs")],
                       rlimits=[], uid=0, gid=0, drop=False)  # fmt: skip
    with pytest.raises(SandboxError) as err:
        await SPAWNER.spawn(["/bin/touch", str(marker)], env={}, setup=setup, stdin=0, stdout=1,
                            stderr=2, pass_fds=(), new_session=True)  # fmt: skip
    assert "cgroup.procs" in err.value.log_message
    assert not marker.exists()


async def test_a_killed_helper_is_replaced(tmp_path: Path) -> None:
    setup = SpawnSetup(procs_files=[], rlimits=[], uid=0, gid=0, drop=False)
    pid = await SPAWNER.spawn(["/bin/true"], env={}, setup=setup, stdin=0, stdout=1, stderr=2,
                              pass_fds=(), new_session=True)  # fmt: skip
    assert os.waitpid(pid, 0)[1] == 0  # our own child: the server reaps it
    helper = SPAWNER._local.link.proc
    os.kill(helper.pid, signal.SIGKILL)
    helper.wait()
    pid = await SPAWNER.spawn(["/bin/true"], env={}, setup=setup, stdin=0, stdout=1, stderr=2,
                              pass_fds=(), new_session=True)  # fmt: skip
    assert os.waitpid(pid, 0)[1] == 0


def _killed_or_exiting(pid: int) -> bool:
    """SIGKILL pending for ``pid``, or it is already exiting (PF_EXITING, a zombie, gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    if int(stat.rsplit(")", 1)[1].split()[6]) & 0x4:  # flags: PF_EXITING
        return True
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields["State"][0] in "ZX":
        return True
    pending = int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)
    return bool(pending & (1 << (signal.SIGKILL - 1)))


async def test_kill_all_without_waiting_leaves_no_process_unkilled(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    """``kill_all(wait=False)`` (after every exec) returns before the killed have exited, but
    only once every process in the group, forks racing the kill included, has SIGKILL."""
    bomb = "while :; do sleep 5 & sh -c : & done 2>/dev/null"
    for i in range(5):  # a race: several tries, each in a new group
        cg = runtime.host.cgroups.create(f"killtest-{os.getpid()}-{i}", CgroupLimits(pids=64))
        try:
            setup = SpawnSetup(procs_files=cg.procs_files, rlimits=[], uid=0, gid=0, drop=False)
            pids = [await SPAWNER.spawn(["/bin/sh", "-c", bomb], env={}, setup=setup, stdin=0,
                                        stdout=1, stderr=2, pass_fds=(), new_session=True)
                    for _ in range(4)]  # fmt: skip
            await asyncio.sleep(0.2)
            assert len(cg.all_pids()) > 4
            cg.kill_all(wait=False)
            left = cg.all_pids()
            assert all(_killed_or_exiting(p) for p in left), left
            for pid in pids:
                os.waitpid(pid, 0)
        finally:
            assert await asyncio.to_thread(cg.remove, 10.0)
