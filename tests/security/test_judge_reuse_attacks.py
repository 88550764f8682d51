"""Reused judge sandboxes (sandbox/local/reuse.py): a job runs in a sandbox an earlier job of the
same user used, after a wipe. Each test has a job A try to leave something behind and a job B,
in the same (reused, checked) sandbox, look for it; B must find nothing A left.

Which of these fail on a naive reuse (the same sandbox, no wipe) is written on each test: the
workspace, its mode and xattrs, and the failed-wipe tests do; the others (tmpfs mounts, IPC,
processes, process state, counters) are new per job because every job still runs in a new
bwrap (new mount, pid and IPC namespaces, a new exec leaf cgroup): they pin that down.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coolcoding.execution.judge import Judge
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.execution.verdicts import Verdict
from coolcoding.sandbox.base import ExecLimits, ExecResult
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.sandbox.registry import make_runtime
from tests.integration.test_judge import job, judge_settings
from tests.security.test_judge_attacks import processes_with

pytestmark = pytest.mark.sandbox

LIMITS = ExecLimits(cpu_s=10, wall_s=30, memory_mb=256, pids=64)
MARK = "ccreusemark"


def new_data_dir(prefix: str) -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    data_dir.chmod(0o711)
    return data_dir


def local_runtime(data_dir: Path, **overrides: object) -> LocalRuntime:
    rt = make_runtime(judge_settings(data_dir, **overrides))
    assert isinstance(rt, LocalRuntime)
    return rt


async def dispose(rt: LocalRuntime, data_dir: Path) -> None:
    await rt.shutdown()
    for d in set(rt.host.cgroups.bases.values()):
        if d.is_dir():
            os.rmdir(d)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    data_dir = new_data_dir("cc-judge-reuse-")
    rt = local_runtime(
        data_dir,
        sandbox_cgroup_parent=f"cc-test-jreuse-{os.getpid()}",
        sandbox_pool_size=1,
        sandbox_judge_reuse_size=2,
    )
    yield rt
    asyncio.run(dispose(rt, data_dir))


async def run(
    rt: LocalRuntime, owner: str, script: str, limits: ExecLimits = LIMITS
) -> tuple[str, ExecResult]:
    """``script`` (bash) as a judge job of ``owner``; (the sandbox's name, the result), once the
    sandbox has been wiped (or destroyed)."""
    async with rt.ephemeral({}, owner=owner, memory_mb=256, pids=64) as box:
        assert isinstance(box, LocalSandbox)
        r = await box.exec(["/bin/bash", "-c", script], limits=limits, cwd=box.workspace_path)
        name = box.spec.session_uuid
    await rt.reuse.drain()
    return name, r


async def test_the_next_job_waits_for_its_users_wipe(runtime: LocalRuntime) -> None:
    """B starts while A's sandbox is still being wiped: it waits for that wipe and reuses the
    sandbox (no new sandbox from the warm pool, whose refill would cost a new one)."""
    async with runtime.ephemeral({}, owner="user:next", memory_mb=256, pids=64) as box:
        await box.exec(["/bin/bash", "-c", "echo x > f"], limits=LIMITS)
        first = box.spec.session_uuid
    async with runtime.ephemeral({}, owner="user:next", memory_mb=256, pids=64) as box:
        r = await box.exec(["/bin/bash", "-c", "ls -A"], limits=LIMITS)
        assert box.spec.session_uuid == first
        assert r.stdout == b""
    await runtime.reuse.drain()


async def a_then_b(rt: LocalRuntime, a: str, b: str, owner: str = "user:1") -> ExecResult:
    """A then B of one owner, B in A's (reused) sandbox; B's result."""
    name_a, ra = await run(rt, owner, a)
    assert ra.exit_code == 0, (ra.stdout, ra.stderr)
    reused = rt.reuse.reused
    name_b, rb = await run(rt, owner, b)
    assert name_b == name_a and rt.reuse.reused == reused + 1, "B did not reuse A's sandbox"
    return rb


LEAVE_FILES = rf"""
set -e
for d in "$PWD" /tmp /dev/shm "$HOME"; do
  [ -e "$d/.{MARK}hidden" ] && continue
  echo x > "$d/.{MARK}hidden"; echo x > "$d/{MARK}noperm"; chmod 000 "$d/{MARK}noperm"
  mkdir -p "$d/{MARK}dir/sub"; echo x > "$d/{MARK}dir/sub/f"; chmod 000 "$d/{MARK}dir/sub" "$d/{MARK}dir"
  mkfifo "$d/{MARK}fifo"
  /usr/bin/python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/{MARK}sock"
  ln -s / "$d/{MARK}link"
  echo x > "$d/-i {MARK} immutable"
  p="$d/{MARK}deep"; for i in $(seq 100); do p="$p/d"; done; mkdir -p "$p"; echo x > "$p/f"
done
# and in every other directory this uid can write to
find / \( -path /proc -o -path /sys \) -prune -o -type d -writable -print 2>/dev/null |
  while IFS= read -r d; do echo x > "$d/{MARK}any" 2>/dev/null || true; done
/usr/bin/python3 -c 'import os; os.setxattr(".", "user.{MARK}", b"x")' 2>/dev/null || true
chmod 0777 .
touch -d 2001-01-01 .
echo left
"""
FIND_FILES = rf"""
find / \( -path /proc -o -path /sys \) -prune -o -name '*{MARK}*' -print 2>/dev/null
ls -A "$PWD" /tmp /dev/shm "$HOME"
stat -c %a .; [ "$(stat -c %u:%g .)" = "$(id -u):$(id -g)" ] && echo owner ok
/usr/bin/python3 -c 'import os; print(os.listxattr("."))'
"""


async def test_no_file_survives_the_wipe(runtime: LocalRuntime) -> None:
    """Fails on a naive reuse: A's workspace files (hidden, without permissions, deep, fifos,
    sockets, symlinks) and the workspace's mode and xattr are there for B."""
    first = await run(runtime, "user:fresh", FIND_FILES)
    rb = await a_then_b(runtime, LEAVE_FILES, FIND_FILES)
    assert rb.exit_code == 0, rb.stderr
    assert MARK.encode() not in rb.stdout, rb.stdout.decode()
    assert rb.stdout == first[1].stdout  # the same as a never-used sandbox: empty, 700, no xattr


async def test_no_process_survives_the_job(runtime: LocalRuntime) -> None:
    """Daemonized (double fork), new session, ignoring SIGTERM, sleeping: killed cgroup-wide
    (passes on a naive reuse too: the job's exec leaf is killed and its pid namespace ends)."""
    leave = rf"""
    ( ( exec -a {MARK}daemon sleep 1000 ) & ) &
    setsid bash -c 'exec -a {MARK}session sleep 1000' < /dev/null > /dev/null 2>&1 &
    bash -c 'trap "" TERM HUP INT; exec -a {MARK}noterm sleep 1000' &
    nohup bash -c 'exec -a {MARK}sleeper sleep 1000' > /dev/null 2>&1 &
    sleep 0.3
    """
    look = r"for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done"
    rb = await a_then_b(runtime, leave, look)
    assert processes_with(MARK) == []
    assert MARK.encode() not in rb.stdout and b"sleep" not in rb.stdout, rb.stdout


async def test_no_ipc_object_survives(runtime: LocalRuntime) -> None:
    """SysV shm/sem/msg queues and a POSIX message queue (passes on a naive reuse too: each
    job's bwrap has a new IPC namespace)."""
    leave = r"""
    ipcmk -M 4096 && ipcmk -S 1 && ipcmk -Q
    /usr/bin/python3 - <<'EOF'
import ctypes, ctypes.util, os
rt = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)
rt.mq_open.restype = ctypes.c_int
fd = rt.mq_open(b"/ccreuse", os.O_CREAT | os.O_RDWR, 0o600, None)
assert fd >= 0, os.strerror(ctypes.get_errno())
EOF
    """
    look = r"""
    ipcs -m -s -q | grep -c '^0x' || true
    /usr/bin/python3 - <<'EOF'
import ctypes, ctypes.util, os
rt = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)
print("mq", rt.mq_open(b"/ccreuse", os.O_RDONLY, 0, None), ctypes.get_errno())
EOF
    """
    rb = await a_then_b(runtime, leave, look)
    count, mq = rb.stdout.decode().split("\n")[:2]
    assert count.strip() == "0", rb.stdout
    assert mq == f"mq -1 {2}", mq  # ENOENT


PROBE = r"""
umask; pwd; ulimit -a; env | sort; ls /proc/self/fd | sort -n | tr '\n' ' '; echo
grep -E '^(SigIgn|SigBlk|SigCgt)' /proc/self/status
"""


async def test_process_state_is_new(runtime: LocalRuntime) -> None:
    """Environment, rlimits, umask, cwd, open fds, signal dispositions: B's are those of a
    never-used sandbox's job, whatever A did (passes on a naive reuse too: a new zygote)."""
    fresh = await run(runtime, "user:fresh2", PROBE)
    leave = r"""
    umask 777; cd /tmp; ulimit -n 16; ulimit -S -t 1; export LEFT=1
    exec 7</dev/null 9>/tmp/x; trap '' INT TERM USR1
    bash -c 'sleep 1000' & disown
    echo done
    """
    rb = await a_then_b(runtime, leave, PROBE, owner="user:state")
    assert rb.stdout == fresh[1].stdout


async def test_counters_and_limits_do_not_carry_over(runtime: LocalRuntime) -> None:
    """A uses ~200 MiB (anonymous, tmpfs and a workspace file) and CPU; B's reported memory and
    CPU are its own, and B can still use the whole memory limit (passes on a naive reuse too:
    each exec has a new leaf cgroup)."""
    hog = r"""
    head -c 60M /dev/zero > /dev/shm/big; head -c 60M /dev/zero > big
    /usr/bin/python3 -c 'b = bytearray(100 << 20); sum(range(3_000_000))'
    """
    _, ra = await run(runtime, "user:mem", hog)
    assert ra.exit_code == 0, ra.stderr
    assert ra.memory_kb > 150 * 1024
    _, small = await run(runtime, "user:mem", "true")
    assert small.memory_kb < 40 * 1024 and small.cpu_ms < 200, small
    _, rb = await run(
        runtime, "user:mem", "/usr/bin/python3 -c 'b = bytearray(200 << 20); print(len(b))'"
    )
    assert rb.exit_code == 0 and rb.limit_hit is None, (rb.limit_hit, rb.stderr)


async def test_no_reuse_across_users(runtime: LocalRuntime) -> None:
    name_a, _ = await run(runtime, "user:alice", f"echo x > {MARK}")
    name_b, rb = await run(runtime, "user:bob", "ls -A; ls /tmp")
    assert name_b != name_a and rb.stdout == b""
    assert await runtime.reuse.claim("user:carol") is None


async def test_a_failed_wipe_destroys_the_sandbox(runtime: LocalRuntime) -> None:
    """A file the wipe cannot remove (root's immutable flag, set from the host): the sandbox is
    destroyed, not reused (fails on a reuse that ignores the wipe's errors)."""
    destroyed = runtime.reuse.destroyed
    victim: list[Path] = []
    async with runtime.ephemeral({}, owner="user:wipefail", memory_mb=256, pids=64) as box:
        assert isinstance(box, LocalSandbox)
        await box.exec(["/bin/bash", "-c", "echo x > stuck"], limits=LIMITS)
        victim.append(box.workspace / "stuck")
        name = box.spec.session_uuid
        if subprocess.run(["chattr", "+i", str(victim[0])], check=False).returncode != 0:
            pytest.skip("chattr +i not supported on this file system")
    try:
        await runtime.reuse.drain()
        assert runtime.reuse.destroyed == destroyed + 1
        assert name not in runtime.reuse.names
        again, _ = await run(runtime, "user:wipefail", "true")
        assert again != name
    finally:
        subprocess.run(["chattr", "-i", str(victim[0])], check=False)
        trash = runtime.state_dir / "ephemeral-trash"
        shutil.rmtree(trash, ignore_errors=True)


async def test_a_wipe_that_times_out_destroys_the_sandbox(runtime: LocalRuntime) -> None:
    destroyed = runtime.reuse.destroyed
    old, runtime.reuse.timeout_s = runtime.reuse.timeout_s, 0.000_001
    try:
        name, _ = await run(runtime, "user:slow", "echo x > f")
    finally:
        runtime.reuse.timeout_s = old
    assert runtime.reuse.destroyed == destroyed + 1 and name not in runtime.reuse.names
    assert not (runtime.state_dir / "ephemeral" / name).exists()
    again, rb = await run(runtime, "user:slow", "ls -A")
    assert again != name and rb.stdout == b""


async def test_reuse_off_gives_a_new_sandbox_every_time(tmp_path: Path) -> None:
    data_dir = new_data_dir("cc-judge-noreuse-")
    rt = local_runtime(
        data_dir,
        sandbox_cgroup_parent=f"cc-test-jnoreuse-{os.getpid()}",
        sandbox_pool_size=0,
        sandbox_judge_reuse=False,
    )
    try:
        a, _ = await run(rt, "user:1", "true")
        b, _ = await run(rt, "user:1", "true")
        assert a != b and len(rt.reuse) == 0
    finally:
        await dispose(rt, data_dir)


async def test_a_cached_c_build_runs_as_the_reused_sandboxs_pooled_process(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached binary is the job's only exec and runs as the (reused) sandbox's zygote."""
    languages = LanguageRegistry()
    await languages.detect_versions()
    judge = Judge(runtime, languages, runtime.settings)
    first = await judge.judge(job(judge, "c", "ok\n"))
    assert first.verdict == Verdict.ACCEPTED
    await runtime.reuse.drain()
    seen: list[tuple[str, int]] = []
    real = LocalSandbox.exec

    async def counting(self: LocalSandbox, argv: list[str], **kw: Any) -> Any:
        r = await real(self, argv, **kw)
        seen.append((self.spec.session_uuid, self.pooled_execs))
        return r

    monkeypatch.setattr(LocalSandbox, "exec", counting)
    reused = runtime.reuse.reused
    again = await judge.judge(job(judge, "c", "ok\n"))
    assert again.cached_build and again.verdict == Verdict.ACCEPTED
    assert runtime.reuse.reused == reused + 1
    assert len(seen) == 1 and seen[0][1] == 1, seen


KILLED_CHILD = r"""
import asyncio, os, signal, sys
from pathlib import Path
from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.registry import make_runtime
from tests.integration.test_judge import judge_settings

data_dir, parent, when = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


async def main() -> None:
    rt = make_runtime(judge_settings(data_dir, sandbox_cgroup_parent=parent, sandbox_pool_size=0))
    limits = ExecLimits(wall_s=30)
    async with rt.ephemeral({}, owner="user:k", memory_mb=256, pids=64) as box:
        print(box.spec.session_uuid, flush=True)
        script = "echo x > left; exec -a ccreusekilled sleep 1000"
        if when == "job":
            task = asyncio.create_task(box.exec(["/bin/bash", "-c", script], limits=limits))
            await asyncio.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)
            await task
        await box.exec(["/bin/bash", "-c", "echo x > left; mkdir -p d/e; echo y > d/e/f"],
                       limits=limits)
    await asyncio.sleep(0)  # the wipe has started (its thread may be removing files)
    await asyncio.sleep(0.002)
    os.kill(os.getpid(), signal.SIGKILL)


asyncio.run(main())
"""


@pytest.mark.parametrize("when", ["job", "wipe"])
async def test_a_server_killed_mid_job_or_mid_wipe_never_reuses_that_sandbox(when: str) -> None:
    """The pool is in memory: a sandbox a SIGKILLed server was using or wiping is removed by the
    next server's orphan clean-up, and the owner's next job gets a new, empty one."""
    data_dir = new_data_dir("cc-judge-reusekill-")
    parent = f"cc-test-jreusekill-{os.getpid()}-{when}"
    root = Path(__file__).resolve().parents[2]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_CHILD, str(data_dir), parent, when,
        cwd=root, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == -9
    name = out.decode().split()[0]
    rt = local_runtime(data_dir, sandbox_cgroup_parent=parent, sandbox_pool_size=0)
    try:
        await rt.cleanup_orphans()
        await asyncio.sleep(0.2)
        assert name not in rt.host.cgroups.leftovers()
        assert not (rt.state_dir / "ephemeral" / name).exists()
        assert processes_with("ccreusekilled") == []
        again, rb = await run(rt, "user:k", "ls -A")
        assert again != name and rb.stdout == b""
    finally:
        await dispose(rt, data_dir)
