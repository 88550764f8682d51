"""Stateless replicas: any replica serves any terminal and run, through the sandbox's agent.

Three real replicas behind nginx on PostgreSQL + Redis, real sandboxes. A replica that does not
hold the session's lease connects to the running sandbox's agent (its address in the DB); the
sandbox outlives the replica that started it, and when its holder dies another replica adopts it
as it runs. No timing is asserted: waits are generous bounds on a shared, slow machine.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from tests.replicas.conftest import (
    LEASE_TTL_S,
    Cluster,
    Replica,
    User,
    new_session,
    open_terminal,
    register,
    upstream_of,
)
from tests.sandbox_helpers import Term

WAIT_S = 30.0
_NUMBER = re.compile(rb"(?<![^\r\n])(\d{1,3})\r\n")


async def poll(check: Callable[[], Any], timeout: float = WAIT_S, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(step)


def numbers(out: bytes | bytearray) -> list[int]:
    return [int(m) for m in _NUMBER.findall(bytes(out))]


async def wait_number_above(term: Term, floor: int, timeout: float = WAIT_S) -> int:
    """Output until the loop prints a number above ``floor``; returns the highest seen."""

    def above(_m: object) -> bool:
        return max(numbers(term.output), default=0) > floor

    if not above(None):
        await term.recv_until(above, timeout)
    return max(numbers(term.output))


async def _shell_pid(term: Term) -> int:
    _, out = await term.run("echo pid=$$")
    found = re.findall(rb"pid=(\d+)", out)
    return int(found[-1])


async def reconnect(cluster: Cluster, user: User, sid: str, tid: str) -> Term:
    """Reconnect through nginx like the browser does (retrying while a replica is down)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return await open_terminal(cluster.lb_ws_url, user, sid, tid)
        except (OSError, websockets.InvalidStatus, websockets.ConnectionClosed):
            assert time.monotonic() < deadline, "no replica took the terminal back"
            await asyncio.sleep(0.2)


async def open_on_other_than(
    cluster: Cluster, user: User, sid: str, tid: str, avoid: Replica
) -> tuple[Term, Replica]:
    """A terminal through nginx that landed on another replica than ``avoid`` (round robin)."""
    for _ in range(12):
        term = await open_terminal(cluster.lb_ws_url, user, sid, tid)
        got = upstream_of(term, cluster)
        if got is not avoid:
            return term, got
        await term.close()
    raise AssertionError("nginx never chose another replica")


def start_on(replica: Replica, user: User, sid: str) -> None:
    with user.client(replica.url) as c:
        r = c.post(f"/api/sessions/{sid}/sandbox/start")
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("kill", ["lease_holder", "not_lease_holder"])
async def test_sigkill_of_the_websockets_replica_keeps_the_same_shell(
    cluster: Cluster, kill: str
) -> None:
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    if kill == "lease_holder":  # the WebSocket's replica starts the sandbox: it holds the lease
        term = await open_terminal(cluster.lb_ws_url, user, sid, "loop")
        victim = upstream_of(term, cluster)
    else:  # the sandbox runs on one replica, the WebSocket lands on another
        starter = cluster.replicas[0]
        start_on(starter, user, sid)
        term, victim = await open_on_other_than(cluster, user, sid, "loop", starter)
    again: Term | None = None
    try:
        await term.ws.send(b"for i in $(seq 60); do echo $i; sleep 1; done\r")
        before = await wait_number_above(term, 3)
        victim.kill()
        again = await reconnect(cluster, user, sid, "loop")
        assert upstream_of(again, cluster) is not victim
        ready = again.controls[0]
        assert ready["reattached"] is True and ready["replay_bytes"] > 0, ready
        await again.recv_until(lambda _m: len(again.output) >= ready["replay_bytes"])
        replayed = numbers(again.output[: ready["replay_bytes"]])
        assert set(range(1, before + 1)) <= set(replayed), replayed
        # The same loop goes on counting (not a new shell: it would print nothing).
        seen = await wait_number_above(again, max(replayed))
        # Another replica takes the lease over (it adopts the sandbox): the loop still runs.
        deadline = time.monotonic() + WAIT_S + LEASE_TTL_S
        while await cluster.lease_holder(sid) in (None, victim):
            assert time.monotonic() < deadline, "nobody took the session over"
            await asyncio.sleep(0.2)
        await wait_number_above(again, seen)
        with user.client(cluster.lb_url) as c:
            assert c.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "running"
        await again.ws.send(b"\x03")
        await again.recv_until(lambda m: m is not None and m["type"] == "command")
        pid = await _shell_pid(again)
        # The killed replica comes back: its start-up cleanup leaves the sandbox alone.
        victim.start()
        assert await _shell_pid(again) == pid
        rec, _ = await again.run("true")
        assert rec["exit_code"] == 0
    finally:
        await term.close()
        if again is not None:
            await again.close()
        if victim.proc is None or victim.proc.poll() is not None:
            victim.start()


async def test_a_terminal_on_a_replica_without_the_lease_works(cluster: Cluster) -> None:
    a, b, c_ = cluster.replicas
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    start_on(a, user, sid)
    start_on(b, user, sid)  # no 409: B uses the sandbox A runs
    term = await open_terminal(b.ws_url, user, sid, "on-b")
    try:
        rec, out = await term.run("echo typed-$((6*7))")
        assert b"typed-42" in out and rec["exit_code"] == 0, (rec, out)
        await term.ws.send('{"type":"resize","cols":120,"rows":40}')
        _, out = await term.run("stty size")
        assert b"40 120" in out, out
        # Listed and closed through the third replica, which neither runs nor attached it.
        with user.client(c_.url) as c:
            listed = c.get(f"/api/sessions/{sid}/terminals").json()
            assert [t["id"] for t in listed] == ["on-b"], listed
            assert c.delete(f"/api/sessions/{sid}/terminals/on-b").status_code == 204

            def gone() -> bool:
                return not c.get(f"/api/sessions/{sid}/terminals").json()

            await poll(gone)
            # Stopped through a replica that does not run it: the holder is asked to.
            assert c.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
            assert c.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "stopped"
    finally:
        await term.close()


async def test_saves_and_terminal_files_cross_replicas_and_runs_work_anywhere(
    cluster: Cluster,
) -> None:
    a, b, c_ = cluster.replicas
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    start_on(a, user, sid)
    term = await open_terminal(c_.ws_url, user, sid, "on-c")  # C holds neither
    try:
        with user.client(b.url) as c:
            r = c.post(f"/api/workspace/{sid}/file/from-b.py", json={"content": "print(6*7)\n"})
            assert r.status_code in (200, 201), r.text

        deadline = time.monotonic() + WAIT_S
        while b"print(6*7)" not in (await term.run("cat from-b.py 2>/dev/null"))[1]:
            assert time.monotonic() < deadline, "B's save never reached the sandbox"
            await asyncio.sleep(0.1)
        await term.run("echo made-in-terminal > made.txt")
        for base in [*(r.url for r in cluster.replicas), cluster.lb_url]:
            with user.client(base) as c:

                def read(c: httpx.Client = c) -> bool:
                    r = c.get(f"/api/workspace/{sid}/file/made.txt")
                    return r.status_code == 200 and "made-in-terminal" in r.text

                await poll(read)
        # The Run button through a replica that does not hold the lease.
        with user.client(b.url) as c:
            r = c.post(f"/api/sessions/{sid}/run", json={"path": "from-b.py"})
            assert r.status_code == 202, r.text
            job = r.json()["id"]

            def finished() -> dict[str, Any] | None:
                got: dict[str, Any] = c.get(f"/api/executions/{job}").json()
                return got if got["status"] == "finished" else None

            done = await poll(finished)
        assert done["verdict"] == "accepted" and (done["stdout"] or "").strip() == "42", done
        assert done["cpu_ms"] and done["cpu_ms"] > 0 and done["memory_kb"] > 0, done
    finally:
        await term.close()


@pytest.mark.parametrize("how", ["rolling", "all_at_once"])
async def test_restarting_replicas_kills_no_sandbox_and_orphans_none(
    cluster: Cluster, how: str
) -> None:
    user = register(cluster.lb_url)
    sids = [new_session(cluster.lb_url, user) for _ in cluster.replicas]
    terms: list[Term] = []
    pids: list[int] = []
    try:
        for r, sid in zip(cluster.replicas, sids, strict=True):  # one sandbox per replica
            start_on(r, user, sid)
            t = await open_terminal(r.ws_url, user, sid, "keep")
            pids.append(await _shell_pid(t))
            await t.ws.send(b"for i in $(seq 600); do echo $i; sleep 1; done\r")
            await wait_number_above(t, 1)
            terms.append(t)
        if how == "rolling":
            for r in cluster.replicas:
                r.restart()
        else:
            for r in cluster.replicas:
                r.stop()
            for r in cluster.replicas:
                r.start()
        for t in terms:
            await t.close()
        terms = []
        for sid, pid in zip(sids, pids, strict=True):
            t = await reconnect(cluster, user, sid, "keep")
            terms.append(t)
            assert t.controls[0]["reattached"] is True, t.controls[0]
            await t.recv_until(lambda _m, t=t: len(t.output) >= t.controls[0]["replay_bytes"])
            seen = max(numbers(t.output))
            await wait_number_above(t, seen)  # the same loop still counts
            await t.ws.send(b"\x03")  # the loop ends (its command record), then the same shell
            await t.recv_until(lambda m: m is not None and m["type"] == "command")
            assert await _shell_pid(t) == pid
        # None orphaned: each running session has a live lease holder (one replica serves it).
        for sid in sids:
            with user.client(cluster.lb_url) as c:
                assert c.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "running"

            deadline = time.monotonic() + WAIT_S + LEASE_TTL_S
            while await cluster.lease_holder(sid) is None:
                assert time.monotonic() < deadline, f"session {sid} has no lease holder"
                await asyncio.sleep(0.2)
    finally:
        for t in terms:
            await t.close()


def _stored(replica: Replica, sid: str) -> list[str]:
    """Paths under the replica's data dir named after the session (image, workspace, agent)."""
    return sorted(str(p) for p in replica.data_dir.rglob(f"{sid}*") if not p.name.endswith(".log"))


async def test_deleting_a_session_through_a_non_holder_deletes_every_replicas_storage(
    cluster: Cluster,
) -> None:
    a, b, c_ = cluster.replicas
    user = register(cluster.lb_url)
    # Running on A, deleted through B: the holder is asked to delete its storage too. (Created
    # through the replica meant to hold it: with the session pool, the creator binds it.)
    sid = new_session(a.url, user)
    start_on(a, user, sid)
    assert _stored(a, sid), "the running sandbox keeps no storage on A?"
    with user.client(b.url) as c:
        assert c.delete(f"/api/sessions/{sid}").status_code == 204
    await poll(lambda: not _stored(a, sid))
    assert not _stored(b, sid) and not _stored(c_, sid)
    # Stopped, its storage on C (down while the session is deleted through B): C deletes it
    # when it starts again.
    sid = new_session(c_.url, user)
    start_on(c_, user, sid)
    with user.client(c_.url) as c:
        assert c.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
    assert _stored(c_, sid), "a stopped sandbox's image stays (a faster next start)"
    c_.kill()
    try:
        with user.client(b.url) as c:
            assert c.delete(f"/api/sessions/{sid}").status_code == 204
        assert _stored(c_, sid)
    finally:
        c_.start()
    await poll(lambda: not _stored(c_, sid))
