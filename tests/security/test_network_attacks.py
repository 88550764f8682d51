"""Attacks from a network-enabled sandbox on the host and its networks (issue 12, finding 1).

Real bubblewrap sandboxes with their own network namespace and slirp4netns. No packet leaves
this machine: the targets are listeners this test opens on the host (loopback, the host's own
addresses), the host's PostgreSQL and Redis, and test hosts the test creates in network
namespaces of its own (``ip netns`` + veth) with private and link-local addresses.
"""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from coolcoding.sandbox.base import ExecLimits, SandboxError
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.settings import Settings
from tests.conftest import register_user, searchable, start_live_server
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    make_runtime,
    new_spec,
    requires_sandbox,
    runtime,
)
from tests.sandbox_helpers import Term

pytestmark = [pytest.mark.sandbox, requires_sandbox]

PEER_PORT = 8213
# Run inside the sandbox: one line per target, "host:port ok" or "host:port <errno name>".
PROBE = textwrap.dedent("""\
    import errno, socket, sys
    for target in sys.argv[1:]:
        host, port = target.rsplit(":", 1)
        s = socket.socket(); s.settimeout(3)
        try:
            s.connect((host, int(port)))
            print(target, "ok", s.recv(16).decode().strip() if int(port) == PEER_PORT else "")
        except OSError as e:
            print(target, errno.errorcode.get(e.errno, str(e)))
        finally:
            s.close()
""").replace("PEER_PORT", str(PEER_PORT))
PEER_SERVER = textwrap.dedent("""\
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(b"peer\\n"); c.close()
""")


async def probe(sb: LocalSandbox, targets: list[str]) -> dict[str, str]:
    r = await sb.exec(["python3", "-c", PROBE, *targets], limits=ExecLimits(wall_s=60))
    assert r.exit_code == 0, r.stderr
    out = {}
    for line in r.stdout.decode().splitlines():
        target, _, verdict = line.partition(" ")
        out[target] = verdict
    assert set(out) == set(targets), r.stdout
    return out


def host_can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def host_ipv4_addresses() -> list[str]:
    """This machine's own IPv4 addresses (not loopback: tested on its own)."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, check=True)
    return [
        info["local"]
        for link in json.loads(out.stdout)
        for info in link.get("addr_info", [])
        if info.get("family") == "inet" and not info["local"].startswith("127.")
    ]


@dataclass
class Peer:
    netns: str
    address: str


@pytest.fixture(scope="module")
def peers() -> Iterator[dict[str, Peer]]:
    """Three test hosts of our own, each in its own namespace behind a veth, with a listener on
    PEER_PORT: a private 10/8 address, a link-local one and a 192.168/16 one."""
    tag = secrets.token_hex(3)
    octet = 100 + secrets.randbelow(100)
    nets = {
        "private10": (f"10.213.{octet}.1/24", f"10.213.{octet}.2/24"),
        "linklocal": (f"169.254.{octet}.1/24", f"169.254.{octet}.2/24"),
        "private192": (f"192.168.{octet}.1/24", f"192.168.{octet}.2/24"),
    }
    made: list[str] = []
    servers: list[subprocess.Popen[bytes]] = []
    out: dict[str, Peer] = {}

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        for i, (name, (host_cidr, peer_cidr)) in enumerate(nets.items()):
            ns, host_if, peer_if = f"cct{tag}{i}", f"cvh{tag}{i}", f"cvp{tag}{i}"
            ip("netns", "add", ns)
            made.append(ns)
            ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns)
            ip("addr", "add", host_cidr, "dev", host_if)
            ip("link", "set", host_if, "up")
            ip("-n", ns, "addr", "add", peer_cidr, "dev", peer_if)
            ip("-n", ns, "link", "set", peer_if, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            address = peer_cidr.split("/")[0]
            server = subprocess.Popen(
                ["ip", "netns", "exec", ns, "python3", "-c", PEER_SERVER, address, str(PEER_PORT)],
                stdout=subprocess.PIPE,
            )
            servers.append(server)
            assert server.stdout is not None and server.stdout.readline() == b"ready\n"
            out[name] = Peer(ns, address)
        yield out
    finally:
        for server in servers:
            server.kill()
            server.wait()
        for ns in made:  # deleting the namespace deletes its veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
async def net_sandbox(runtime: LocalRuntime) -> LocalSandbox:
    sb = await runtime.start(new_spec(network=True))
    assert isinstance(sb, LocalSandbox)
    return sb


@pytest.fixture
def host_listener() -> Iterator[tuple[socket.socket, int]]:
    """A listener of the test on the host's 0.0.0.0 (so also on 127.0.0.1 and every address)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # the point: reachable on every host address
        s.listen(64)
        yield s, s.getsockname()[1]


async def test_host_loopback_services_are_unreachable(
    net_sandbox: LocalSandbox, host_listener: tuple[socket.socket, int]
) -> None:
    _, port = host_listener
    targets = [f"{h}:{p}" for h in ("127.0.0.1", "10.0.2.2") for p in (port, 5432, 6379)]
    for p in (port, 5432, 6379):  # control: the services are up, on the host
        assert host_can_connect("127.0.0.1", p)
    verdicts = await probe(net_sandbox, targets)
    assert not [t for t, v in verdicts.items() if v.startswith("ok")], verdicts


async def test_host_own_addresses_are_unreachable(
    net_sandbox: LocalSandbox, host_listener: tuple[socket.socket, int]
) -> None:
    _, port = host_listener
    addresses = host_ipv4_addresses()
    assert addresses
    for a in addresses:
        assert host_can_connect(a, port), a  # control
    verdicts = await probe(net_sandbox, [f"{a}:{port}" for a in addresses])
    assert all(v == "EACCES" for v in verdicts.values()), verdicts


async def test_listener_in_the_sandbox_is_not_on_the_host(net_sandbox: LocalSandbox) -> None:
    server = textwrap.dedent("""\
        import socket, time
        s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(4)
        port = s.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # control: it listens
        print(port, flush=True)
        time.sleep(20)
    """)
    async with net_sandbox.exec_stream(["python3", "-c", server],
                                       limits=ExecLimits(wall_s=30)) as run:  # fmt: skip
        async for name, chunk in run.chunks():
            assert name == "stdout", chunk
            port = int(chunk)
            break
        assert not host_can_connect("127.0.0.1", port)
        await run.kill()


async def test_private_and_link_local_test_hosts_are_unreachable(
    peers: dict[str, Peer], net_sandbox: LocalSandbox
) -> None:
    targets = [f"{p.address}:{PEER_PORT}" for p in peers.values()]
    for p in peers.values():
        assert host_can_connect(p.address, PEER_PORT), p  # control: the path from the host
    verdicts = await probe(net_sandbox, targets)
    assert all(v == "EACCES" for v in verdicts.values()), verdicts


@pytest.fixture
async def allowing_runtime(peers: dict[str, Peer]) -> AsyncIterator[LocalRuntime]:
    allow = [str(ipaddress.IPv4Network(p.address)) for p in peers.values()]
    async with make_runtime(sandbox_network_allow=allow) as rt:
        yield rt


async def test_allowed_test_hosts_are_reachable(
    peers: dict[str, Peer], allowing_runtime: LocalRuntime
) -> None:
    """The rule is "not there", not "no network": listed destinations do work (through slirp)."""
    sb = await allowing_runtime.start(new_spec(network=True))
    assert isinstance(sb, LocalSandbox)
    verdicts = await probe(sb, [f"{p.address}:{PEER_PORT}" for p in peers.values()])
    assert all(v == "ok peer" for v in verdicts.values()), verdicts


async def test_network_off_sandbox_has_no_network_at_all(
    peers: dict[str, Peer], runtime: LocalRuntime
) -> None:
    sb = await runtime.start(new_spec(network=False))
    assert isinstance(sb, LocalSandbox)
    verdicts = await probe(sb, [f"{p.address}:{PEER_PORT}" for p in peers.values()])
    assert all(v == "ENETUNREACH" for v in verdicts.values()), verdicts
    r = await sb.exec(["cat", "/proc/net/dev"])
    assert [ln.split(":")[0].strip() for ln in r.stdout.decode().splitlines()[2:]] == ["lo"]


async def test_sandbox_cannot_change_its_network(net_sandbox: LocalSandbox) -> None:
    """No CAP_NET_ADMIN/CAP_NET_RAW over its namespace: routes, links, raw and packet sockets,
    IPv6 stay as the server made them."""
    script = textwrap.dedent("""\
        import socket
        for args in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
                     (socket.AF_PACKET, socket.SOCK_RAW, 0x0300)):
            try:
                socket.socket(*args)
                print("socket ok")
            except OSError as e:
                print("socket", e.errno)
        try:
            open("/proc/sys/net/ipv6/conf/all/disable_ipv6", "w").write("0")
            print("sysctl ok")
        except OSError as e:
            print("sysctl", e.errno)
    """)
    r = await net_sandbox.exec(["python3", "-c", script])
    lines = r.stdout.decode().split("\n")
    assert "socket ok" not in lines and "sysctl ok" not in lines, r.stdout
    attempts = "ip route del prohibit 10.128.0.0/9; ip link set tap0 down; "
    r = await net_sandbox.exec(
        ["sh", "-c", attempts + "ip route; cat /proc/net/if_inet6; echo end"]
    )
    assert r.stderr.count(b"Operation not permitted") == 2, r.stderr
    assert b"prohibit 10.128.0.0/9" in r.stdout and b"default via 10.0.2.2 dev tap0" in r.stdout
    assert r.stdout.endswith(b"end\n") and b"::1" not in r.stdout  # no IPv6 address at all
    resolv = await net_sandbox.exec(["cat", "/etc/resolv.conf"])
    assert resolv.stdout.startswith(b"nameserver 10.0.2.3\n")


async def test_slirp_dies_with_the_sandbox(runtime: LocalRuntime) -> None:
    sb = await runtime.start(new_spec(network=True))
    assert isinstance(sb, LocalSandbox) and sb.network is not None
    pid = sb.network.slirp.pid
    assert os.path.exists(f"/proc/{pid}")
    await runtime.stop(sb.spec.session_uuid)
    assert not os.path.exists(f"/proc/{pid}")


async def test_network_session_through_the_api_cannot_reach_the_api(tmp_path: Path) -> None:
    """The whole path: a session created with ``network_enabled`` over HTTP, its terminal."""
    server, stop = start_live_server("sqlite", searchable(tmp_path))
    try:
        u = register_user(server)
        sid = u.new_session(network_enabled=True)
        port = urlsplit(server.base_url).port
        t = await Term.open(server, u, sid)
        code = (
            "import errno, socket\n"
            "try: socket.create_connection(('127.0.0.1', PORT), 3); r = 'ok'\n"
            "except OSError as e: r = errno.errorcode[e.errno]\n"
            "print('RES' + 'ULT=' + r)\n"
        ).replace("PORT", str(port))
        _, out = await t.run(f'python3 -c "{code}"; ip -o link | grep -c tap0')
        assert b"RESULT=ECONNREFUSED" in out, out
        assert host_can_connect("127.0.0.1", port or 0)  # control: the API is up, on the host
        await t.close()
    finally:
        stop()


SERVER_WITH_A_NETWORK_SANDBOX = textwrap.dedent("""\
    import asyncio, sys, uuid
    from pathlib import Path
    from coolcoding.sandbox.base import SandboxSpec
    from coolcoding.sandbox.local.runtime import LocalRuntime
    from coolcoding.settings import Settings

    async def main():
        rt = LocalRuntime(Settings(data_dir=Path(sys.argv[1]), sandbox_cgroup_parent=sys.argv[2],
                                   sandbox_pool_size=0))
        sb = await rt.start(SandboxSpec(session_uuid=str(uuid.uuid4()), network=True))
        print(sb.network.slirp.pid, rt.etc_root, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")


def running(pid: int) -> bool:
    """Alive, not a zombie (this test process may be its subreaper: see process.py); a zombie
    is reaped here when it is ours."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    if state != "Z":
        return True
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return False


async def test_slirp_outlives_a_killed_server_and_orphan_clean_up_ends_it(tmp_path: Path) -> None:
    """SIGKILL of the server: slirp4netns (its own session, the sandbox's cgroup) runs on with the
    sandbox for the next server process; a sandbox no server takes back is an orphan, and the
    clean-up of the next runtime on that cgroup parent kills its NAT too: nothing is left."""
    searchable(tmp_path)
    parent = f"coolcoding-test-{secrets.token_hex(6)}"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_WITH_A_NETWORK_SANDBOX, str(tmp_path), parent],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    pid_text, etc_root = server.stdout.readline().decode().split()
    slirp = int(pid_text)
    try:
        assert Path(f"/proc/{slirp}/cmdline").read_bytes().startswith(b"/usr/bin/slirp4netns")
        assert os.getsid(slirp) == slirp != os.getsid(server.pid)  # a session of its own
        server.kill()
        server.wait()
        assert running(slirp)
        # The next server process on that data dir: the sandbox is nobody's, an orphan.
        rt = LocalRuntime(Settings(data_dir=tmp_path, sandbox_cgroup_parent=parent,
                                   sandbox_pool_size=0))  # fmt: skip
        try:
            assert await rt.cleanup_orphans() >= 1
            assert rt.host.cgroups.leftovers() == []
        finally:
            await rt.shutdown()
            for d in set(rt.host.cgroups.bases.values()):
                if d.is_dir():
                    os.rmdir(d)
        for _ in range(100):  # its exit is an event to wait for, not a time to measure
            if not running(slirp):
                break
            await asyncio.sleep(0.1)
        assert not running(slirp)
    finally:
        server.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(slirp, 9)
        shutil.rmtree(etc_root, ignore_errors=True)


@pytest.mark.parametrize("slirp", ["/nonexistent/slirp4netns", "/bin/false"])
async def test_without_a_working_nat_a_network_sandbox_does_not_start(slirp: str) -> None:
    """Fail closed: a missing or failing slirp4netns is an error, never the host's network."""
    async with make_runtime(sandbox_slirp4netns_path=slirp) as rt:
        spec = new_spec(network=True)
        with pytest.raises(SandboxError) as caught:
            await rt.start(spec)
        assert caught.value.reason == "network_unavailable"
        assert "slirp4netns" in caught.value.log_message
        assert rt.poll(spec.session_uuid) == 0  # not running
        assert rt.host.cgroups.leftovers() == []  # its cgroups are gone


async def test_a_tampered_state_cannot_point_the_nat_kill_at_another_process(
    runtime: LocalRuntime,
) -> None:
    """The sandbox state (a DB row) names the slirp4netns a later server process kills at stop.
    A row naming another process (here a ``sleep`` of the test; PostgreSQL in real life) or
    the agent's pid as slirp4netns is not believed: the pid must be a slirp4netns in this
    session's cgroup. The sandbox is adopted with its own NAT and its network still works."""
    sb = await runtime.start(new_spec(network=True))
    assert isinstance(sb, LocalSandbox) and sb.network is not None
    uuid, old_slirp = sb.spec.session_uuid, sb.network.slirp_pid
    state = runtime.get_state(uuid)
    assert state["network"] == {"slirp_pid": old_slirp}
    assert await runtime.release(uuid)  # as a server process ending with keep-on-shutdown
    victim = subprocess.Popen(["sleep", "300"])
    try:
        for wrong in (victim.pid, state["agent"]["pid"]):
            tampered = {**state, "network": {"slirp_pid": wrong}}
            adopted = await runtime.start(sb.spec, tampered)
            assert isinstance(adopted, LocalSandbox) and adopted.network is not None
            assert adopted.network.slirp_pid != wrong
            assert adopted.agent is not None and adopted.agent.pid == state["agent"]["pid"]
            r = await adopted.exec(["cat", "/etc/resolv.conf"])
            assert r.stdout.startswith(b"nameserver 10.0.2.3\n")
            assert await runtime.release(uuid)
        adopted = await runtime.start(sb.spec, state)
        await runtime.stop(uuid)
        assert victim.poll() is None  # never killed as "the sandbox's NAT"
        assert not running(old_slirp)
    finally:
        victim.kill()
        victim.wait()
