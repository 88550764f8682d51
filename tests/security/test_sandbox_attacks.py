"""Attacks on the local sandbox, as tests: each must fail safely, the host and the other
sandboxes staying fine. Real bubblewrap, real cgroups, small limits to stay fast."""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

import errno
import os
import resource
import socket
import subprocess

import pytest

from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    any_sandbox,
    make_runtime,
    new_spec,
    requires_sandbox,
    runtime,
)

pytestmark = [pytest.mark.sandbox, requires_sandbox]


@pytest.fixture
def sandbox(any_sandbox: LocalSandbox) -> LocalSandbox:
    """Every attack runs on a session sandbox and on a pooled ephemeral one (whose first exec
    is released from a pre-started zygote: see sandbox/local/pool.py)."""
    return any_sandbox


def host_pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}")
                status = open(f"/proc/{entry}/status").read()
            except OSError:
                continue
            if st.st_uid == uid and "State:\tZ" not in status:
                pids.append(int(entry))
    return pids


def exec_leftovers(sb: LocalSandbox) -> list[int]:
    """Processes of the sandbox uid on the host, but the session sandbox's agent (its first
    process, which holds its terminals, in its own leaf cgroup)."""
    agent = sb.agent.process.cgroup._all_pids() if sb.agent and sb.agent.process else []
    return sorted(set(host_pids_of_uid(sb.creds.uid)) - set(agent))


async def assert_still_works(sb: LocalSandbox) -> None:
    r = await sb.exec(["echo", "alive"])
    assert r.stdout == b"alive\n" and r.limit_hit is None


async def test_host_shadow_and_root_home_are_absent(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["sh", "-c", "cat /etc/shadow; ls /root; ls /home; ls /etc/ssl"])
    assert r.stderr.count(b"No such file") == 2 and b"root:" not in r.stdout
    assert r.stdout.split() == [b"coder", b"openssl.cnf"]  # /home has only our tmpfs home


async def test_other_sessions_workspace_and_processes_are_invisible(
    runtime: LocalRuntime, sandbox: LocalSandbox
) -> None:
    other = await runtime.start(new_spec())
    assert isinstance(other, LocalSandbox)
    await other.write_files({"secret.txt": b"TOPSECRET"})
    term = await other.open_terminal(80, 24)  # a live process of the other session
    try:
        probe = (
            f"cat {other.workspace}/secret.txt; ls {other.workspace.parent}; "
            "for p in /proc/[0-9]*; do cat $p/root/workspace/secret.txt; done 2>/dev/null; "
            "find / -name secret.txt -not -path '/proc/*' -not -path '/usr/*' 2>/dev/null; "
            f"kill -0 {term.pid}; ls /proc | grep -c '^[0-9]'"
        )
        r = await sandbox.exec(["sh", "-c", probe], limits=ExecLimits(wall_s=20))
        assert b"TOPSECRET" not in r.stdout and b"secret.txt" not in r.stdout
        # Only our own few processes (bwrap's pid 1, sh, ls, grep) are visible.
        assert int(r.stdout.split()[-1]) <= 5
        assert term.poll() is None  # the other session is unharmed
    finally:
        await term.close()


@pytest.mark.parametrize("port", [5432, 6379])
async def test_host_services_are_unreachable(sandbox: LocalSandbox, port: int) -> None:
    code = (
        "import socket\n"
        f"for host in ('127.0.0.1', '10.0.2.2', '8.8.8.8'):\n"
        "    s = socket.socket(); s.settimeout(1)\n"
        f"    try: s.connect((host, {port})); print('CONNECTED', host)\n"
        "    except OSError as e: print('refused', host, e.errno)\n"
    )
    r = await sandbox.exec(["python3", "-c", code], limits=ExecLimits(wall_s=10))
    assert b"CONNECTED" not in r.stdout and r.stdout.count(b"refused") == 3
    # Meanwhile the host itself can reach the service (so the test proves isolation).
    with socket.socket() as s:
        s.settimeout(1)
        reachable = s.connect_ex(("127.0.0.1", port)) == 0
    if not reachable:
        pytest.skip(f"nothing listens on 127.0.0.1:{port} on this host")


async def test_writes_outside_the_workspace_fail(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["sh", "-c", "for f in /x /etc/x /usr/x /bin/x /proc/x; do "
                                        "touch $f 2>&1; done; touch /workspace/ok && echo OK"])  # fmt: skip
    errors = r.stdout.decode()
    assert errors.count("Read-only file system") + errors.count("Permission denied") >= 4
    assert errors.rstrip().endswith("OK")
    assert not os.path.exists("/usr/x") and not os.path.exists("/x")


async def test_sandbox_uid_is_unprivileged_inside_and_on_the_host(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["sh", "-c", "id -u; grep ^Uid /proc/self/status; touch mine"])
    uid = int(r.stdout.split()[0])
    assert uid != 0 and uid == sandbox.creds.uid
    assert os.stat(sandbox.workspace / "mine").st_uid == sandbox.creds.uid != 0
    r = await sandbox.exec(["sh", "-c", "cat /proc/self/uid_map"])
    # Never mapped to host root: every mapped range ends at the unprivileged uid.
    assert b" 0 " not in r.stdout or str(uid).encode() in r.stdout


async def test_killing_host_processes_has_no_effect(sandbox: LocalSandbox) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        await sandbox.exec(["sh", "-c", f"kill -9 {victim.pid} {os.getpid()} 1; kill -9 -1; "
                                            "echo done"])  # fmt: skip
        assert victim.poll() is None  # the host process lives; so do we
        await assert_still_works(sandbox)
    finally:
        victim.kill()
        victim.wait()


async def test_fork_bomb_hits_the_pids_limit_and_exec_returns(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["bash", "-c", ":(){ :|:& };:; sleep 1"],
                           limits=ExecLimits(pids=32, wall_s=3))  # fmt: skip
    assert r.limit_hit == "pids"
    await sandbox.settled()
    assert sandbox.cgroup.pids() == [] and exec_leftovers(sandbox) == []
    await assert_still_works(sandbox)


async def test_memory_bomb_is_oom_killed_and_reported(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["python3", "-c", "x = bytearray(4 << 30)"],
                           limits=ExecLimits(memory_mb=64, wall_s=10))  # fmt: skip
    assert r.limit_hit == "memory" and r.signal == 9
    assert r.memory_kb <= 64 * 1024 + 1024
    r = await sandbox.exec(["python3", "-c", "b = []\nwhile True: b.append(b'x' * 2**20)"],
                           limits=ExecLimits(memory_mb=64, wall_s=10))  # fmt: skip
    assert r.limit_hit == "memory"
    await assert_still_works(sandbox)


async def test_disk_filler_stops_at_the_file_size_limit(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["dd", "if=/dev/zero", "of=big", "bs=1M", "count=1000"],
                           limits=ExecLimits(wall_s=10))  # fmt: skip
    assert r.limit_hit == "disk"
    assert os.stat(sandbox.workspace / "big").st_size <= sandbox.spec.disk_bytes
    # Many files under the per-file limit, beyond the quota (a session's image holds the quota
    # plus 4 KiB per allowed item): refused by the image, or measured after the exec; reported.
    files = [f"f{i}" for i in range(1, 9)]
    r = await sandbox.exec(["sh", "-c", "for f in " + " ".join(files) + "; do head -c 8M /dev/zero > $f; done"],
                           limits=ExecLimits(wall_s=10))  # fmt: skip
    assert r.limit_hit == "disk"
    await sandbox.write_files(dict.fromkeys(["big", *files]))


async def test_terminal_disk_filler_is_stopped_with_a_message() -> None:
    """With ``sandbox_disk_quota=measured`` the watcher stops a terminal's disk filler (with the
    image, the default, its writes fail with ENOSPC: test_disk_quota_attacks.py)."""
    async with make_runtime(sandbox_disk_quota="measured") as rt:
        sandbox = await rt.start(new_spec(memory_mb=256, pids=64, disk_bytes=16 * 1024 * 1024))
        assert isinstance(sandbox, LocalSandbox)
        term = await sandbox.open_terminal(80, 24)
        await term.write(b"for i in 1 2 3 4; do head -c 8M /dev/zero > g$i; done; sleep 60\n")
        out = b""
        while chunk := await __import__("asyncio").wait_for(term.read(), 10):
            out += chunk
        assert b"quota" in out and term.poll() is not None


@pytest.mark.parametrize("command", [["yes"], ["head", "-c", "1G", "/dev/zero"]])
async def test_infinite_output_is_cut_at_the_limit(
    sandbox: LocalSandbox, command: list[str]
) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = await sandbox.exec(command, limits=ExecLimits(output_bytes=1 << 20, wall_s=10))
    assert r.limit_hit == "output" and r.stdout_truncated and len(r.stdout) == 1 << 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024  # KiB
    await assert_still_works(sandbox)


async def test_no_process_survives_the_exec(sandbox: LocalSandbox) -> None:
    r = await sandbox.exec(["bash", "-c", "sleep 100 & setsid sleep 100 & (sleep 100 &); "
                                          "nohup sleep 100 >/dev/null 2>&1 & echo started"],
                           limits=ExecLimits(wall_s=5))  # fmt: skip
    assert r.stdout == b"started\n" and r.wall_ms < 3000
    # The result comes once all are killed; a killed process may still be exiting then (a CI
    # run under load saw two): the exec's clean-up waits for that.
    await sandbox.settled()
    assert exec_leftovers(sandbox) == []
    assert sandbox.cgroup.pids() == []


SYSCALL_PROBE = r"""
import ctypes, os, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *args)
    return 0 if r >= 0 else ctypes.get_errno()
print("keyctl", call(250, 0, -3, 0))            # KEYCTL_GET_KEYRING_ID, the user keyring
print("add_key", call(248, b"user", b"k", b"v", 1, -3))
print("bpf", call(321, 0, 0, 0))
print("perf_event_open", call(298, 0, 0, -1, -1, 0))
print("userfaultfd", call(323, 0))
print("io_uring_setup", call(425, 1, 0))
print("unshare", call(272, 0x00020000))         # CLONE_NEWNS
print("mount", call(165, b"none", b"/tmp", b"tmpfs", 0, 0))
print("x32_getpid", call(0x40000000 | 39))
t = threading.Thread(target=print, args=("thread", 0)); t.start(); t.join()
print("subprocess", subprocess.run(["true"]).returncode)
"""


def probe_results(stdout: bytes) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in stdout.decode().splitlines())}


async def test_dangerous_syscalls_are_refused_by_the_seccomp_filter(sandbox: LocalSandbox) -> None:
    """Kernel attack surface a program has no business with: refused before the kernel code
    behind it runs (EPERM; io_uring and the x32 ABI look absent: ENOSYS); threads and child
    processes still work."""
    r = await sandbox.exec(["python3", "-c", SYSCALL_PROBE], limits=ExecLimits(wall_s=20))
    assert r.exit_code == 0, r.stderr
    got = probe_results(r.stdout)
    for name in ("keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd", "unshare", "mount"):
        assert got[name] == errno.EPERM, (name, got)
    assert got["io_uring_setup"] == errno.ENOSYS
    assert got["x32_getpid"] == errno.ENOSYS
    assert got["thread"] == 0 and got["subprocess"] == 0
    await assert_still_works(sandbox)


async def test_without_the_filter_the_same_calls_reach_the_kernel() -> None:
    """The control of the test above: with ``COOLCODING_SANDBOX_SECCOMP=false`` the kernel
    answers (io_uring exists: a NULL params pointer is EFAULT; the user keyring exists), so the
    refusals above are the filter's doing, not the namespaces'."""
    async with make_runtime(sandbox_seccomp=False) as rt:
        sb = await rt.start(new_spec())
        r = await sb.exec(["python3", "-c", SYSCALL_PROBE], limits=ExecLimits(wall_s=20))
        got = probe_results(r.stdout)
    assert got["io_uring_setup"] == errno.EFAULT, got
    assert got["keyctl"] != errno.EPERM, got
