"""Issue 14: a session's sandbox outlives the API process (real ``coolcoding serve`` processes).

A shell keeps running through a SIGKILL of the server and through a graceful restart; a new
server process on the same data dir and database reattaches to the same terminal id, gets the
scrollback replayed and sees the program still running; stop kills everything in the sandbox;
a leftover whose agent no longer answers is removed at start-up (a real orphan).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import make_database, searchable
from tests.serve_helpers import ServeProcess, serve_log

pytestmark = pytest.mark.sandbox
TIMEOUT = 20.0


@pytest.fixture(params=["sqlite", "postgres"])
def platform_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "data").mkdir()
    data = searchable(tmp_path / "data")
    db = make_database(str(request.param), data)
    env = {
        "database_url": db.url,
        "sandbox_keep_on_shutdown": "true",  # the default, which the test helpers turn off
        "sandbox_cgroup_parent": f"coolcoding-test-outlive-{secrets.token_hex(4)}",
        "terminal_reattach_grace_s": "300",
    }
    yield data, env
    db.drop()


def sandbox_pids(sid: str, *, sleeps: bool = False) -> set[int]:
    """Host processes in the session's cgroups (the agent, its bwrap, the shells); ``sleep``
    only with ``sleeps`` (the loop starts a new one every second)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                in_sandbox = f"/{sid}/" in Path(f"/proc/{entry}/cgroup").read_text()
                if in_sandbox and (sleeps or Path(f"/proc/{entry}/comm").read_text() != "sleep\n"):
                    found.add(int(entry))
            except OSError:
                continue
    return found


def stop_and_terminate(srv: ServeProcess, env: dict[str, str], token: str, sid: str) -> None:
    """Whatever happened, leave no sandbox behind (these servers keep them at shutdown)."""
    if srv.proc.poll() is not None and sid:
        srv = ServeProcess(srv.data_dir, **env)
    if sid:
        try:
            httpx.post(f"{srv.base_url}/api/sessions/{sid}/sandbox/stop",
                       cookies={"cc_session": token}, timeout=30)  # fmt: skip
        except httpx.HTTPError:
            pass
    srv.terminate()


def login(srv: ServeProcess) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=srv.base_url, timeout=30)
    name = f"o{secrets.token_hex(5)}"
    r = client.post(
        "/api/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": "correct horse b"},
    )
    assert r.status_code == 201, r.text
    return client, str(r.json()["token"])


class Socket:
    """A terminal WebSocket that collects output and control messages."""

    def __init__(self, ws: Any, ready: dict[str, Any]) -> None:
        self.ws = ws
        self.ready = ready
        self.output = bytearray()

    @classmethod
    async def open(cls, srv: ServeProcess, token: str, sid: str, tid: str) -> Socket:
        ws = await websockets.connect(
            f"{srv.ws_url}/api/sessions/{sid}/terminals/{tid}?cols=100&rows=30",
            additional_headers={"Cookie": f"cc_session={token}"},
            max_size=None,
        )
        ready = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert ready["type"] == "ready", ready
        sock = cls(ws, ready)
        if ready["replay_bytes"]:
            replay = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert isinstance(replay, bytes) and len(replay) == ready["replay_bytes"]
            sock.output += replay
        return sock

    async def until(self, pattern: bytes) -> re.Match[bytes]:
        async with asyncio.timeout(TIMEOUT):
            while (m := re.search(pattern, self.output)) is None:
                msg = await self.ws.recv()
                if isinstance(msg, bytes):
                    self.output += msg
        return m

    def numbers(self) -> list[int]:
        return [int(n) for n in re.findall(rb"[\r\n]n(\d+)\r", bytes(self.output))]


async def test_the_shell_outlives_a_killed_and_a_restarted_server_and_stop_ends_it(
    platform_env: tuple[Path, dict[str, str]],
) -> None:
    data, env = platform_env
    srv = ServeProcess(data, **env)
    token = sid = ""
    try:
        client, token = login(srv)
        sid = str(client.post("/api/sessions/", json={"name": "outlive"}).json()["uuid"])
        term = await Socket.open(srv, token, sid, "t1")
        await term.ws.send(b"echo pid=$$\r")
        shell_pid = (await term.until(rb"pid=(\d+)\r")).group(1)
        await term.ws.send(b"for i in $(seq 60); do echo n$i; sleep 1; done\r")
        await term.until(rb"[\r\n]n3\r")
        pids = sandbox_pids(sid)
        assert pids
        srv.kill()  # SIGKILL: no shutdown code runs
        await term.ws.close()

        assert sandbox_pids(sid) >= pids  # nothing of the sandbox died with the server
        srv = ServeProcess(data, **env)
        term = await Socket.open(srv, token, sid, "t1")
        assert term.ready["reattached"] is True
        replayed = term.numbers()
        assert replayed[:3] == [1, 2, 3], bytes(term.output[-400:])  # the scrollback
        last = replayed[-1]
        await term.until(rb"[\r\n]n" + str(last + 2).encode() + rb"\r")  # still counting
        assert term.numbers()[-1] < 60
        await term.ws.close()

        srv.terminate()  # graceful: the shell is left running too
        assert sandbox_pids(sid) >= pids, serve_log(data)
        srv = ServeProcess(data, **env)
        client = httpx.Client(base_url=srv.base_url, timeout=30)
        client.cookies.set("cc_session", token)
        assert client.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "running"
        assert [t["id"] for t in client.get(f"/api/sessions/{sid}/terminals").json()] == ["t1"]
        term = await Socket.open(srv, token, sid, "t1")
        await term.until(rb"[\r\n]n\d+\r")
        await term.ws.send(b"\x03")  # the loop ends; the same shell answers
        await term.ws.send(b"echo again=$$\r")
        assert (await term.until(rb"again=(\d+)\r")).group(1) == shell_pid

        r = client.post(f"/api/sessions/{sid}/sandbox/stop")
        assert r.json() == {"status": "stopped"}
        assert not sandbox_pids(sid, sleeps=True)  # stop killed everything in it
        await term.ws.close()
    finally:
        stop_and_terminate(srv, env, token, sid)
    assert not sandbox_pids(sid, sleeps=True)
    srv = ServeProcess(data, **env)  # and the next start finds nothing to adopt or remove
    try:
        client = httpx.Client(base_url=srv.base_url, timeout=30)
        client.cookies.set("cc_session", token)
        assert client.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "stopped"
        assert not sandbox_pids(sid, sleeps=True)
    finally:
        srv.terminate()


async def test_a_sandbox_whose_agent_is_gone_is_removed_at_start_up(
    platform_env: tuple[Path, dict[str, str]],
) -> None:
    data, env = platform_env
    srv = ServeProcess(data, **env)
    token = sid = ""
    try:
        client, token = login(srv)
        sid = str(client.post("/api/sessions/", json={"name": "orphan"}).json()["uuid"])
        term = await Socket.open(srv, token, sid, "t1")
        await term.ws.send(b"sleep 1000 &\recho started\r")
        await term.until(rb"started\r")
        srv.kill()
        await term.ws.close()
        agents = [
            p
            for p in sandbox_pids(sid)
            if b"coolcoding.agent" in Path(f"/proc/{p}/cmdline").read_bytes()
            and Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"/usr/bin/python3")
        ]
        assert len(agents) == 1
        os.kill(agents[0], 9)  # the agent dies while no server runs: its shells are orphans
        srv = ServeProcess(data, **env)
        assert not sandbox_pids(sid, sleeps=True), serve_log(data)
        client = httpx.Client(base_url=srv.base_url, timeout=30)
        client.cookies.set("cc_session", token)
        assert client.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "stopped"
    finally:
        stop_and_terminate(srv, env, token, sid)
