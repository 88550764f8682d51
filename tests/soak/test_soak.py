"""Soak: terminals opened and closed, judge jobs and saves, mixed, for a while, on one server.

Runs ``COOLCODING_SOAK_SECONDS`` (default 10) per database. At the end: no stuck judge worker
(a last job completes and none is running), no lost write (every save reads back with its
content), no leaked fd: the server runs in this process, so ``/proc/self/fd`` is counted before
(after a warm-up) and after (once closed terminals are reaped), with every test-side client
closed both times; allowed: ``FD_SLACK`` (database/Redis pool connections opened on demand).
The counts are printed (``-s``) for the record.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, UserClient, register_user, start_live_server
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox

SOAK_SECONDS = float(os.environ.get("COOLCODING_SOAK_SECONDS", "10"))
FD_SLACK = 16
JOB_TIMEOUT = 120.0
BACKENDS = ["sqlite", "postgres"]


def open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the listing's own fd, or one closed meanwhile
    return fds


def kinds(fds: dict[int, str]) -> Counter[str]:
    """``socket:[123]`` -> ``socket``, ``anon_inode:[pidfd]`` -> ``anon_inode:[pidfd]``, ..."""
    return Counter(t if t.startswith("anon_inode") else t.split(":[")[0] for t in fds.values())


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    # Not under pytest's own temp root: every pytest session that starts meanwhile (another
    # run on this host) makes /tmp/pytest-of-<user> 0700 again, and the sandbox uids could no
    # longer reach the workspaces of a run that lasts minutes.
    data_dir = Path(tempfile.mkdtemp(prefix=f"cc-soak-{request.param}-", dir="/tmp"))
    os.chmod(data_dir, 0o711)
    srv, stop = start_live_server(
        str(request.param), data_dir, terminal_reattach_grace_s=1, exec_workers=2
    )
    try:
        yield srv
    finally:
        stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class Soak:
    """The mixed load; every step asserts its own result, the end checks the invariants."""

    def __init__(self, server: LiveServer, user: UserClient, sids: list[str]) -> None:
        self.server = server
        self.user = user
        self.sids = sids
        self.saved: dict[tuple[str, str], str] = {}
        self.counts: Counter[str] = Counter()
        self.api = httpx.AsyncClient(
            base_url=server.base_url, cookies={"cc_session": user.token}, timeout=60
        )

    async def until(self, deadline: float, step: Any) -> None:
        for i in itertools.count():
            if time.monotonic() >= deadline:
                return
            await step(i)

    async def terminal(self, sid: str, i: int) -> None:
        """Open a new terminal, check it works, close it one of three ways."""
        tid = f"soak{i}"
        t = await Term.open(self.server, self.user, sid, tid=tid)
        await t.wait_output(b"$ ")
        msg, out = await t.run(f"echo soak-$(({i}+1000))")
        assert f"soak-{i + 1000}".encode() in out and msg["exit_code"] == 0, out
        how = ("delete", "socket", "exit")[i % 3]
        if how == "delete":
            r = await self.api.delete(f"/api/sessions/{sid}/terminals/{tid}")
            assert r.status_code == 204, r.text
        elif how == "exit":
            await t.ws.send(b"exit\r")
            await t.recv_until(lambda m: m is not None and m["type"] == "exit")
        await t.close()
        if how != "delete":  # the reaper closes it (grace 1 s)
            await self.wait_reaped(sid, tid)
        self.counts[f"terminal_{how}"] += 1

    async def wait_reaped(self, sid: str, tid: str) -> None:
        end = time.monotonic() + 30
        while True:
            listed = (await self.api.get(f"/api/sessions/{sid}/terminals")).json()
            if all(t["id"] != tid for t in listed):
                return
            assert time.monotonic() < end, f"terminal {tid} never reaped"
            await asyncio.sleep(0.1)

    async def judge(self, i: int) -> None:
        jobs = [
            {"language": "bash", "source": f"echo hi{i}\n"},
            {"language": "python", "source": f"print('hi{i}')\n"},
        ]
        r = await self.api.post("/api/executions/batch", json={"jobs": jobs})
        assert r.status_code == 202, r.text
        for eid in r.json()["ids"]:
            body = await self.finished(eid)
            assert (body["verdict"], body["stdout"]) == ("accepted", f"hi{i}\n"), body
            self.counts["judge_jobs"] += 1

    async def finished(self, eid: str) -> dict[str, Any]:
        end = time.monotonic() + JOB_TIMEOUT
        while True:
            body: dict[str, Any] = (await self.api.get(f"/api/executions/{eid}")).json()
            if body["status"] == "finished":
                return body
            assert time.monotonic() < end, f"judge job stuck: {body}"
            await asyncio.sleep(0.05)

    async def save(self, i: int) -> None:
        sid = self.sids[i % len(self.sids)]
        path = f"soak/f{i % 25}.txt"
        content = f"save {i} " + "x" * (i % 200) + "\n"
        r = await self.api.post(f"/api/workspace/{sid}/file/{path}", json={"content": content})
        assert r.status_code in (200, 201), r.text
        self.saved[(sid, path)] = content
        self.counts["saves"] += 1
        await asyncio.sleep(0.02)

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            self.until(deadline, lambda i: self.terminal(self.sids[0], i)),
            self.until(deadline, lambda i: self.terminal(self.sids[1], 10_000 + i)),
            self.until(deadline, self.judge),
            self.until(deadline, self.save),
        )

    async def check_saves(self) -> None:
        for (sid, path), content in self.saved.items():
            r = await self.api.get(f"/api/workspace/{sid}/file/{path}")
            assert r.status_code == 200, r.text
            assert r.json()["content"] == content, (sid, path)


async def test_soak(server: LiveServer) -> None:
    user = register_user(server)
    sids = [user.new_session("soak-a"), user.new_session("soak-b")]
    executions = server.platform.executions
    terminals = server.platform.terminals

    # Warm-up: both sandboxes running, the judge's pool and the connection pools in use.
    warm = Soak(server, user, sids)
    await asyncio.gather(
        warm.terminal(sids[0], 0), warm.terminal(sids[1], 1), warm.judge(0), warm.save(0)
    )
    await warm.api.aclose()
    await asyncio.sleep(1.0)
    before = open_fds()

    soak = Soak(server, user, sids)
    t0 = time.monotonic()
    await soak.run(SOAK_SECONDS)
    elapsed = time.monotonic() - t0
    await soak.check_saves()
    await soak.judge(-1)  # a last job completes: no worker is stuck
    end = time.monotonic() + 30
    while executions.queue.running:  # the worker counts itself done just after the DB says so
        assert time.monotonic() < end, f"{executions.queue.running} judge workers still busy"
        await asyncio.sleep(0.05)
    await soak.api.aclose()

    # Closed terminals are reaped, the pool refilled, keep-alive sockets gone: then count.
    end = time.monotonic() + 30
    while True:
        after = open_fds()
        settled = terminals.count() == 0 and len(after) <= len(before) + FD_SLACK
        if settled or time.monotonic() > end:
            break
        await asyncio.sleep(0.5)
    grown = kinds(after) - kinds(before)
    print(
        f"\nsoak[{server.backend}] {elapsed:.0f} s: {dict(soak.counts)}; "
        f"fds before {len(before)}, after {len(after)}; grown by kind {dict(grown)}"
    )
    assert terminals.count() == 0
    assert len(after) <= len(before) + FD_SLACK, (
        f"fds: {len(before)} -> {len(after)}; grown: {dict(grown)}; "
        f"new: {sorted(set(after.values()) - set(before.values()))[:40]}"
    )
    assert soak.counts["judge_jobs"] > 0 and soak.counts["saves"] > 0
    assert sum(v for k, v in soak.counts.items() if k.startswith("terminal_")) > 0
    user.client.close()
