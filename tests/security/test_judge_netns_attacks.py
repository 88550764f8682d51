"""A judge sandbox's kept network namespace (``sandbox_judge_keep_netns``, sandbox.py
``loopback_netns``): made once by the server with only its loopback up, kept by the sandbox for
every job it runs (with reuse: its user's next jobs). Each test has a job try to reach or leave
something in a network namespace another job will see.

Against a naive version these fail: one namespace for all judge sandboxes (another user's
concurrent listener is reachable: ``test_another_users_concurrent_job_is_unreachable``), a
namespace the sandbox user could change (``test_the_namespace_cannot_be_changed``), an fd of
it handed into the sandbox (``test_no_namespace_fd_inside``), an fd the server never closes
(``test_the_server_keeps_no_namespace_of_a_destroyed_sandbox``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.security.test_judge_reuse_attacks import (
    LIMITS,
    a_then_b,
    dispose,
    local_runtime,
    new_data_dir,
    run,
)

pytestmark = pytest.mark.sandbox

MARK = "ccnetnsmark"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    data_dir = new_data_dir("cc-judge-netns-")
    rt = local_runtime(
        data_dir,
        sandbox_cgroup_parent=f"cc-test-jnetns-{os.getpid()}",
        sandbox_pool_size=1,
        sandbox_judge_reuse_size=4,
    )
    yield rt
    asyncio.run(dispose(rt, data_dir))


def another_runtime(name: str, **overrides: object) -> tuple[LocalRuntime, Path]:
    """A runtime of its own (data dir, cgroup subtree) beside the module's."""
    data_dir = new_data_dir(f"cc-judge-netns-{name}-")
    cgroup = f"cc-test-jnetns-{name}-{os.getpid()}"
    return local_runtime(data_dir, sandbox_cgroup_parent=cgroup, **overrides), data_dir


def server_netns_fds() -> set[str]:
    """The network namespaces this process (the runtime's server) holds an fd of."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("net:["):
            found.add(target)
    return found


VIEW = r"""
readlink /proc/self/ns/net | sed 's/[0-9]//g'
ip -o addr | awk '{print $2, $3, $4}'
tail -n +3 /proc/net/dev | awk '{print $1}'
cat /proc/sys/net/ipv6/conf/all/disable_ipv6
ip route show table all type local | awk '{print $1, $2}' | sort
"""


async def test_the_view_is_what_bwrap_gives(runtime: LocalRuntime) -> None:
    """Only a loopback, up, with 127.0.0.1/8 and ::1: the same view as a namespace bwrap makes
    per job (the setting off)."""
    _, kept = await run(runtime, "user:view", VIEW)
    off, data_dir = another_runtime("off", sandbox_pool_size=0, sandbox_judge_keep_netns=False)
    try:
        _, fresh = await run(off, "user:view", VIEW)
    finally:
        await dispose(off, data_dir)
    assert kept.exit_code == 0, kept.stderr
    assert kept.stdout == fresh.stdout, (kept.stdout.decode(), fresh.stdout.decode())
    lines = kept.stdout.decode().splitlines()
    assert "lo inet 127.0.0.1/8" in lines and "lo inet6 ::1/128" in lines, lines
    assert [ln for ln in lines if ln.endswith(":")] == ["lo:"], lines


async def test_the_hosts_loopback_is_unreachable(runtime: LocalRuntime) -> None:
    """A listener on the host's 127.0.0.1 (the API's, PostgreSQL's, Redis's address) is not
    reachable from a job."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = f"""/usr/bin/python3 -c '
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2); print("reached")
except OSError as e:
    print("unreachable", e.errno)'"""
        _, r = await run(runtime, "user:host", probe)
    assert r.stdout.startswith(b"unreachable"), (r.stdout, r.stderr)


LISTEN = f"""
/usr/bin/python3 - <<'EOF' &
import os, socket, time
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", 47011)); tcp.listen()
uds = socket.socket(socket.AF_UNIX); uds.bind("\\0{MARK}"); uds.listen()
open("/workspace/ready", "w").close()
time.sleep(float(os.environ.get("HOLD", "0.1")))
EOF
"""

CONNECT = f"""/usr/bin/python3 - <<'EOF'
import socket
for family, addr in ((socket.AF_INET, ("127.0.0.1", 47011)), (socket.AF_UNIX, "\\0{MARK}")):
    s = socket.socket(family)
    try:
        s.connect(addr); print("reached", family.name)
    except OSError as e:
        print("refused", family.name, e.errno)
print(sum(1 for line in open("/proc/net/tcp") if line.split()[3] == "0A"), "tcp listeners")
print(sum(1 for line in open("/proc/net/unix") if "{MARK}" in line), "marked unix sockets")
EOF
"""

NOTHING = b"refused AF_INET 111\nrefused AF_UNIX 111\n0 tcp listeners\n0 marked unix sockets\n"


async def test_another_users_concurrent_job_is_unreachable(runtime: LocalRuntime) -> None:
    """While A (alice) listens on 127.0.0.1:47011 and an abstract unix socket, B (bob), at the
    same time, reaches neither and sees no listener: each sandbox has its own namespace."""
    async with runtime.ephemeral({}, owner="user:alice", memory_mb=256, pids=64) as box_a:
        assert isinstance(box_a, LocalSandbox)
        ready = Path(box_a.workspace) / "ready"
        script = f"export HOLD=20\n{LISTEN}\nwhile [ ! -e stop ]; do sleep 0.05; done\nkill %1"
        task = asyncio.create_task(
            box_a.exec(["/bin/bash", "-c", script], limits=LIMITS, cwd=box_a.workspace_path)
        )
        try:
            for _ in range(400):
                if ready.exists() or task.done():
                    break
                await asyncio.sleep(0.025)
            assert ready.exists(), (await task).stderr if task.done() else "A never listened"
            _, rb = await run(runtime, "user:bob", CONNECT)
            _, ra2 = await run(runtime, "user:alice", CONNECT)  # alice's second sandbox too
            (Path(box_a.workspace) / "stop").write_bytes(b"")
            ra = await task
        finally:
            (Path(box_a.workspace) / "stop").touch()
            if not task.done():
                await task
    assert ra.exit_code == 0, ra.stderr
    assert rb.stdout == NOTHING, rb.stdout.decode()
    assert ra2.stdout == NOTHING, ra2.stdout.decode()


async def test_no_socket_survives_the_wipe(runtime: LocalRuntime) -> None:
    """A leaves daemonized listeners (TCP, abstract unix) in its sandbox's kept namespace; B,
    its user's next job in the same sandbox and namespace, finds none: the wipe killed every
    process, and with them every socket."""
    leave = f"export HOLD=1000\n{LISTEN}\nwhile [ ! -e ready ]; do sleep 0.02; done\ndisown -a"
    ns = "readlink /proc/self/ns/net"
    name_a, ns_a = await run(runtime, "user:left", ns)
    rb = await a_then_b(runtime, leave, f"{ns}\n{CONNECT}", owner="user:left")
    name_c, ns_c = await run(runtime, "user:left", ns)
    assert name_c == name_a
    assert ns_a.stdout == ns_c.stdout and rb.stdout.startswith(ns_a.stdout), "not the kept one"
    assert rb.stdout[len(ns_a.stdout) :] == NOTHING, rb.stdout.decode()


async def test_the_namespace_cannot_be_changed(runtime: LocalRuntime) -> None:
    """The sandbox user has no capability over the kept namespace (it belongs to the initial
    user namespace): it cannot take the loopback down, add an address or route, or write a
    net sysctl, so its next job's network is the same."""
    change = r"""
    ip link set lo down 2>&1 | head -c 200; echo "link $?"
    ip addr add 127.99.9.9/32 dev lo 2>&1 | head -c 200
    ip route add 127.88.0.0/16 dev lo 2>&1 | head -c 200
    echo 1 > /proc/sys/net/ipv4/ip_forward 2>&1; echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>&1
    /usr/bin/python3 -c '
import socket
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW); print("packet socket")
except OSError as e:
    print("no packet socket", e.errno)'
    """
    before = await run(runtime, "user:change", VIEW)
    rb = await a_then_b(runtime, change, VIEW, owner="user:change")
    assert rb.stdout == before[1].stdout, rb.stdout.decode()
    assert b"127.99.9.9" not in rb.stdout and b"127.88.0.0" not in rb.stdout


async def test_no_namespace_fd_inside(runtime: LocalRuntime) -> None:
    """No process of a job (the zygote's program, its children) holds an fd of a network
    namespace: the kept one is entered by the spawner before bwrap, never passed in."""
    look = r"for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null; done | grep -c 'net:\[' || true"
    _, r = await run(runtime, "user:fds", look)
    assert r.stdout == b"0\n", r.stdout


async def test_the_server_keeps_no_namespace_of_a_destroyed_sandbox() -> None:
    """Every kept namespace fd is closed when its sandbox is destroyed (a job's with reuse off,
    the pool's at shutdown): none is left in the server after many jobs."""
    before = server_netns_fds()
    rt, data_dir = another_runtime("fds", sandbox_pool_size=2, sandbox_judge_reuse=False)
    try:
        results = await asyncio.gather(*(run(rt, f"user:{i % 3}", "true") for i in range(12)))
        assert all(r.exit_code == 0 for _, r in results)
        assert len(server_netns_fds() - before) <= 2  # the warm pool's, at most
    finally:
        await dispose(rt, data_dir)
    assert server_netns_fds() - before == set()


async def test_a_job_of_a_kept_namespace_still_has_its_limits(runtime: LocalRuntime) -> None:
    """The --share-net path keeps every other namespace new per job: pid 1 of the job's pid
    namespace is bwrap's, and the hostname is the sandbox's."""
    _, r = await run(
        runtime, "user:ns", "cat /proc/1/comm; hostname", ExecLimits(cpu_s=5, wall_s=10)
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout.decode().splitlines()[0] == "bwrap", r.stdout
