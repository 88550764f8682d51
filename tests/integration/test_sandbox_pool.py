"""The warm pool of ephemeral sandboxes (sandbox/local/pool.py, zygote.py), with real bubblewrap
and cgroups: a pooled first exec behaves like the normal path, and no pooled sandbox is reused."""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

from pathlib import Path

import pytest

from coolcoding.sandbox.base import ExecLimits, ExecResult, SandboxError
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    make_runtime,
    new_spec,
    plain_runtime,
    pooled_runtime,
    requires_sandbox,
)
from tests.security.test_sandbox_attacks import host_pids_of_uid

pytestmark = [pytest.mark.sandbox, requires_sandbox]

# What a program can observe of its process and environment (not pid 1's command line, which
# names the zygote's bwrap instead of the program's).
PROBE = (
    "id; pwd; env | sort; ls -l /proc/self/fd/ | tail -n +2 | cut -c1-10,44- | tr -d 0-9; "
    "ulimit -a; umask; "
    "grep -E '^(Sig|Cap|NoNewPrivs|Seccomp)' /proc/self/status; ls /proc | grep -c '^[0-9]'; "
    "cat /proc/self/cgroup | cut -d/ -f1,4-; cat -; echo err >&2; exit 3"
)


async def first_exec(
    rt: LocalRuntime, argv: list[str], *, pooled: bool, **kw: object
) -> tuple[ExecResult, LocalSandbox]:
    """Run ``argv`` as the first exec of a fresh ephemeral sandbox (pooled or not)."""
    if pooled:
        await rt.pool.wait_full()
    async with rt.ephemeral({"in.txt": b"data\n"}, memory_mb=256, pids=64) as sb:
        assert isinstance(sb, LocalSandbox)
        assert (sb.warm is not None) == pooled
        r = await sb.exec(argv, **kw)  # type: ignore[arg-type]
        assert sb.pooled_execs == int(pooled)
    return r, sb


async def both(
    plain: LocalRuntime, pooled: LocalRuntime, argv: list[str], **kw: object
) -> tuple[ExecResult, ExecResult]:
    normal, _ = await first_exec(plain, argv, pooled=False, **kw)
    warm, _ = await first_exec(pooled, argv, pooled=True, **kw)
    return normal, warm


async def test_pooled_exec_sees_what_the_normal_path_sees(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    kw = {"stdin": b"stdin bytes\n", "env": {"FOO": "a b", "PWD": "/x"}, "cwd": "/workspace"}
    normal, warm = await both(plain_runtime, pooled_runtime, ["bash", "-c", PROBE], **kw)
    assert (warm.exit_code, warm.signal, warm.limit_hit) == (3, None, None)

    # uids differ per sandbox by design; everything else is the same.
    def strip(out: bytes) -> list[bytes]:
        return [line for line in out.splitlines() if not line.startswith((b"uid=", b"USER"))]

    assert strip(warm.stdout) == strip(normal.stdout)
    assert b"stdin bytes" in warm.stdout and b"FOO=a b" in warm.stdout
    assert warm.stderr == normal.stderr == b"err\n"


@pytest.mark.parametrize(
    ("argv", "limits", "hit"),
    [
        (["python3", "-c", "x = bytearray(1 << 30)"], ExecLimits(memory_mb=64), "memory"),
        (["sh", "-c", "while :; do :; done"], ExecLimits(cpu_s=0.5), "cpu"),
        (["sleep", "5"], ExecLimits(wall_s=0.3), "wall"),
        (["yes"], ExecLimits(output_bytes=4096), "output"),
        (["bash", "-c", ":(){ :|:& };:; sleep 1"], ExecLimits(pids=16, wall_s=3), "pids"),
        (
            ["dd", "if=/dev/zero", "of=f", "bs=1M", "count=9"],
            ExecLimits(file_size_bytes=1 << 20),
            "disk",
        ),
        (["python3", "-c", "print(1)"], ExecLimits(), None),
    ],
)
async def test_pooled_limits_are_hit_like_the_normal_path(
    plain_runtime: LocalRuntime,
    pooled_runtime: LocalRuntime,
    argv: list[str],
    limits: ExecLimits,
    hit: str | None,
) -> None:
    normal, warm = await both(plain_runtime, pooled_runtime, argv, limits=limits)
    assert normal.limit_hit == warm.limit_hit == hit
    assert (warm.exit_code, warm.signal) == (normal.exit_code, normal.signal)
    if hit == "output":
        assert warm.stdout_truncated and len(warm.stdout) == 4096


async def test_pooled_cpu_and_memory_are_the_programs_not_the_zygotes(
    pooled_runtime: LocalRuntime,
) -> None:
    idle, _ = await first_exec(pooled_runtime, ["/bin/true"], pooled=True)
    assert idle.cpu_ms < 15 and idle.memory_kb < 8 * 1024  # zygote set-up not counted
    code = "import time\nb = bytearray(100 << 20)\nt = time.process_time()\n" \
           "while time.process_time() - t < 0.3: pass\n"  # fmt: skip
    busy, _ = await first_exec(pooled_runtime, ["python3", "-c", code], pooled=True)
    assert 300 <= busy.cpu_ms < 600 and 100 * 1024 <= busy.memory_kb < 140 * 1024


async def test_missing_program_or_cwd_fails_like_the_normal_path(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    for rt, pooled in ((plain_runtime, False), (pooled_runtime, True)):
        for kw in ({"argv": ["no-such-program"]}, {"argv": ["true"], "cwd": "/nonexistent"}):
            with pytest.raises(SandboxError) as e:
                await first_exec(rt, pooled=pooled, **kw)  # type: ignore[arg-type]
            assert e.value.reason == "exec_failed"


async def test_requests_the_zygote_cannot_express_take_the_normal_path(
    pooled_runtime: LocalRuntime,
) -> None:
    await pooled_runtime.pool.wait_full()
    async with pooled_runtime.ephemeral({}) as sb:
        assert isinstance(sb, LocalSandbox) and sb.warm is not None
        r = await sb.exec(["sh", "-c", "ulimit -f"], limits=ExecLimits(file_size_bytes=1000))
        assert r.stdout == b"1\n" and sb.pooled_execs == 0 and sb.warm is None  # 1000 B
        assert (await sb.exec(["echo", "again"])).stdout == b"again\n"


async def test_a_pooled_sandbox_serves_one_job_and_is_then_destroyed(
    pooled_runtime: LocalRuntime,
) -> None:
    rt = pooled_runtime
    write = ["sh", "-c", "echo secret > mine; (sleep 100 &); ls"]
    r1, sb1 = await first_exec(rt, write, pooled=True)
    r2, sb2 = await first_exec(rt, ["ls", "-a", "/workspace", "/tmp"], pooled=True)
    assert b"mine" in r1.stdout and b"mine" not in r2.stdout and b"secret" not in r2.stdout
    assert sb1.spec.session_uuid != sb2.spec.session_uuid and sb1.workspace != sb2.workspace
    for sb in (sb1, sb2):
        assert host_pids_of_uid(sb.creds.uid) == []
        assert not sb.workspace.exists() and not any(Path(p).exists() for p in sb.cgroup.paths)
        assert sb.spec.session_uuid not in rt.pool.names


async def test_compile_then_run_second_exec_takes_the_normal_path(
    pooled_runtime: LocalRuntime,
) -> None:
    await pooled_runtime.pool.wait_full()
    async with pooled_runtime.ephemeral({"a.sh": b"echo ran $1\n"}) as sb:
        assert isinstance(sb, LocalSandbox)
        first = await sb.exec(["cp", "a.sh", "b.sh"])
        second = await sb.exec(["sh", "b.sh", "x"], stdin=b"")
        assert (first.exit_code, second.stdout, sb.pooled_execs) == (0, b"ran x\n", 1)


async def test_the_pool_refills_after_a_job_and_never_exceeds_its_size(
    pooled_runtime: LocalRuntime,
) -> None:
    pool = pooled_runtime.pool
    before = pool.names
    await first_exec(pooled_runtime, ["true"], pooled=True)
    assert len(pool) == 1 or len(pool) == 2
    await pool.wait_full()
    assert len(pool) == 2 and len(pool.names - before) == 1


async def test_pool_size_zero_runs_every_job_on_the_normal_path(
    plain_runtime: LocalRuntime,
) -> None:
    rt = plain_runtime
    assert rt.pool.size == 0
    r, sb = await first_exec(rt, ["echo", "hi"], pooled=False)
    assert r.stdout == b"hi\n" and len(rt.pool) == 0 and sb.pooled_execs == 0


async def test_shutdown_destroys_pooled_sandboxes_and_leaves_nothing_behind() -> None:
    async with make_runtime(sandbox_pool_size=3) as rt:
        await first_exec(rt, ["true"], pooled=False)  # the first job starts the filling
        await rt.pool.wait_full()
        pooled = list(rt.pool._ready)
        assert len(pooled) == 3 and all(host_pids_of_uid(sb.creds.uid) for sb in pooled)
        assert await rt.cleanup_orphans() == 0  # the pool's sandboxes are not orphans
        await rt.shutdown()
        for sb in pooled:
            assert host_pids_of_uid(sb.creds.uid) == []
            assert not any(Path(p).exists() for p in sb.cgroup.paths)
        assert rt.host.cgroups.leftovers() == []
        trash = rt.state_dir / "ephemeral-trash"
        assert not any((rt.state_dir / "ephemeral").iterdir())
        assert not trash.exists() or not any(trash.iterdir())


async def test_a_job_may_raise_the_pooled_sandboxes_limits(pooled_runtime: LocalRuntime) -> None:
    # Pooled sandboxes start with 512 MiB; raising an existing v1 limit must keep memsw >= memory.
    await pooled_runtime.pool.wait_full()
    async with pooled_runtime.ephemeral({}, memory_mb=1536, pids=200) as sb:
        assert isinstance(sb, LocalSandbox)
        code = "b = bytearray(700 << 20); print(len(b) >> 20)"
        r = await sb.exec(["python3", "-c", code], limits=ExecLimits(memory_mb=1024, pids=150))
        assert (r.stdout, r.limit_hit, sb.pooled_execs) == (b"700\n", None, 1)
        assert r.memory_kb >= 700 * 1024


async def test_shutdown_removes_its_tmpfs_dirs() -> None:
    """A clean shutdown leaves nothing of this server in the tmpfs: its /etc root and, once
    no sandbox is left running, its agents' socket root (an empty one stayed per identity)."""
    async with make_runtime() as rt:
        sb = await rt.start(new_spec(memory_mb=256, pids=64, disk_bytes=16 * 1024 * 1024))
        assert isinstance(sb, LocalSandbox) and sb.agent is not None
        sockets, etc_root = rt.agents.sockets, rt.etc_root
        assert sockets.is_dir() and etc_root.is_dir()
        await rt.shutdown()
        assert not sockets.exists() and not etc_root.exists()
