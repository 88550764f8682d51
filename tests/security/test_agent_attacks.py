"""Attacks on the sandbox agent: symlink escapes through the file methods, clients without the
secret (from the host and from inside the sandbox itself), oversize frames, other uids."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coolcoding.agent import protocol
from coolcoding.agent.client import AgentError, AgentRefused
from tests.agent_helpers import RunningAgent, read_until, running_agent
from tests.integration.conftest_sandbox import requires_sandbox

SANDBOX = pytest.param("sandbox", marks=[pytest.mark.sandbox, requires_sandbox])


@pytest.fixture(params=["plain", SANDBOX])
async def agent(request: pytest.FixtureRequest) -> AsyncIterator[RunningAgent]:
    async with running_agent(request.param) as a:
        yield a


@pytest.fixture
async def sandboxed(request: pytest.FixtureRequest) -> AsyncIterator[RunningAgent]:
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/bwrap"):
        pytest.skip("needs root and bubblewrap")
    async with running_agent("sandbox") as a:
        yield a


async def expect_error(code: str, coro: object) -> None:
    with pytest.raises(AgentError) as e:
        await coro  # type: ignore[misc]
    assert e.value.code == code, e.value


async def test_file_methods_never_follow_a_symlink_out_of_the_workspace(
    agent: RunningAgent,
) -> None:
    outside = Path(tempfile.mkdtemp(prefix="cc-outside-"))
    try:
        (outside / "secret").write_bytes(b"host secret")
        # As the agent sees it: the sandbox has no host /tmp, so point at its own /etc there.
        target = "/etc" if agent.kind == "sandbox" else str(outside)
        victim = "/etc/hostname" if agent.kind == "sandbox" else str(outside / "secret")
        os.symlink(target, agent.workspace / "esc")
        os.symlink(victim, agent.workspace / "link")
        c = await agent.client()
        name = "hostname" if agent.kind == "sandbox" else "secret"
        await expect_error("unsafe_path", c.read_file(f"esc/{name}"))
        await expect_error("unsafe_path", c.read_file("link"))
        await expect_error("unsafe_path", c.write_file("esc/planted", b"x"))
        await expect_error("unsafe_path", c.mkdir("esc/dir"))
        await expect_error("unsafe_path", c.move("link", "esc/moved"))
        await expect_error("unsafe_path", c.delete(f"esc/{name}"))
        await expect_error("not_a_folder", c.list_tree("esc"))
        await expect_error("not_found", c.list_tree(f"esc/{name}"))
        assert not (outside / "planted").exists() and not (outside / "dir").exists()
        entries = {e["path"]: e for e in await c.list_tree(hashes=True)}
        assert entries["esc"]["type"] == "symlink" and "sha256" not in entries["link"]
        assert set(entries) == {"esc", "link"}  # listed, never entered
        # Writing over a symlink replaces the link itself; its target is untouched.
        await c.write_file("link", b"mine")
        assert (agent.workspace / "link").read_bytes() == b"mine"
        assert not (agent.workspace / "link").is_symlink()
        assert (outside / "secret").read_bytes() == b"host secret"
        assert await c.delete("esc") is True
        assert (outside / "secret").exists()
        await c.close()
    finally:
        shutil.rmtree(outside)


async def test_a_client_without_the_secret_is_refused(agent: RunningAgent) -> None:
    with pytest.raises(AgentRefused) as e:
        await agent.client(secret=b"not the secret, same length!!!!!")
    assert e.value.code == "bad_secret"
    good = await agent.client()
    assert await good.ping()
    await good.close()


async def test_oversize_frame_is_refused_and_the_agent_keeps_serving_others(
    agent: RunningAgent,
) -> None:
    a = await agent.client()
    await a.pty_open(80, 24, terminal_id="t", argv=agent.shell)
    att = await a.pty_attach("t")
    await att.write(b"for i in $(seq 3); do echo k$i; sleep 0.5; done\r")
    r, w = await asyncio.open_unix_connection(agent.socket)
    await r.readexactly(4)
    await protocol.read_frame(r, 4096)
    # Claims 3 GiB: refused from the header alone, nothing is buffered.
    w.write(protocol.MAGIC + struct.pack(">IBI", 3 << 30, protocol.KIND_CONTROL, 0))
    rest = await asyncio.wait_for(r.read(), 10)
    assert json.loads(rest[protocol.HEADER.size :])["code"] == "too_large"
    # The same after authentication.
    b = await agent.client()
    b._writer.write(struct.pack(">IBI", 3 << 30, protocol.KIND_DATA, 1))
    with pytest.raises(ConnectionError):
        for _ in range(100):
            await asyncio.wait_for(b.ping(), 5)
            await asyncio.sleep(0.02)
    await read_until(att, b"k3\r\n")
    assert await a.ping()
    await a.close()
    await b.close()


async def test_another_uid_cannot_reach_the_agents_socket(sandboxed: RunningAgent) -> None:
    """Another sandbox's uid (any uid but this sandbox's and root) is stopped by the directory."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n s.connect(sys.argv[1]); print('connected')\n"
        "except PermissionError: print('denied')\n"
    )
    out = await asyncio.to_thread(
        subprocess.run,
        ["/usr/bin/python3", "-c", code, sandboxed.socket],
        capture_output=True,
        text=True,
        user=65534,
        group=65534,
        timeout=30,
    )
    assert out.stdout.strip() == "denied", out


SELF_ATTACK = r"""
import hashlib, hmac, json, os, socket, struct
pid = int(os.environ["AGENT_PID"])
report = {}
for name in ("environ", "mem", "fd", "maps"):
    try:
        p = f"/proc/{pid}/{name}"
        os.listdir(p) if name == "fd" else open(p, "rb").read(64)
        report[name] = "read"
    except OSError as e:
        report[name] = type(e).__name__
report["cmdline"] = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
report["my_fds"] = sorted(int(f) for f in os.listdir("/proc/self/fd"))
s = socket.socket(socket.AF_UNIX)
s.connect("/run/coolcoding/agent.sock")
f = s.makefile("rb")
assert f.read(4) == b"\x89CCA"
n, _k, _c = struct.unpack(">IBI", f.read(9))
hello = json.loads(f.read(n))
guess = hmac.new(b"guess" * 8, hello["challenge"].encode(), hashlib.sha256).hexdigest()
body = json.dumps({"type": "auth", "protocol": 1, "challenge": "00", "proof": guess}).encode()
s.sendall(b"\x89CCA" + struct.pack(">IBI", len(body), 1, 0) + body)
n, _k, _c = struct.unpack(">IBI", f.read(9))
report["answer"] = json.loads(f.read(n))
print(json.dumps(report))
"""


async def test_the_sandbox_user_cannot_use_or_steal_its_agents_secret(
    sandboxed: RunningAgent,
) -> None:
    c = await sandboxed.client()
    pid = (await c.version())["pid"]
    run = await c.exec_start(["python3", "-c", SELF_ATTACK], env={"AGENT_PID": str(pid)})
    out, err, ex = await run.collect()
    assert ex["exit_code"] == 0, err
    report = json.loads(out)
    assert report["answer"]["type"] == "refused" and report["answer"]["code"] == "bad_secret"
    # The agent is not dumpable: its memory, environment and fds are root's in /proc.
    assert report["environ"] == report["mem"] == report["maps"] == "PermissionError"
    assert report["fd"] == "PermissionError"
    assert sandboxed.secret.hex() not in report["cmdline"]
    assert report["my_fds"] == [0, 1, 2, 3]  # nothing of the agent's leaks into programs
    await c.close()


async def test_the_watchers_inotify_instance_is_the_sandbox_users_not_roots(
    sandboxed: RunningAgent,
) -> None:
    """Each session's watcher used to take one of root's 128 inotify instances; in the agent it
    is charged to the sandbox's own uid."""
    c = await sandboxed.client()
    await c.subscribe(fs=True)
    pid = sandboxed.host_pid
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(sandboxed.uid)} and sandboxed.uid != 0
    links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert "anon_inode:inotify" in links
    await c.close()
