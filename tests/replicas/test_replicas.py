"""Three replicas behind nginx on one PostgreSQL + Redis (real processes, real sandboxes).

A sandbox outlives the replica that started it (the one holding the session's lease); every
replica serves its terminals and runs through its agent (test_stateless.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.replicas.conftest import (
    LEASE_TTL_S,
    Cluster,
    new_session,
    open_terminal,
    register,
)

WAIT_S = 20.0  # generous: the machine is shared and slow; no timing is asserted


async def poll(check: Callable[[], Any], timeout: float = WAIT_S, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(step)


async def test_a_file_made_in_the_terminal_is_read_through_every_replica_and_nginx(
    cluster: Cluster,
) -> None:
    a = cluster.replicas[0]
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    term = await open_terminal(a.ws_url, user, sid)
    try:
        await term.run("echo made-in-terminal > made.txt")
        for base in [*(r.url for r in cluster.replicas), cluster.lb_url]:
            with user.client(base) as c:

                def read(c: httpx.Client = c) -> bool:
                    r = c.get(f"/api/workspace/{sid}/file/made.txt")
                    return r.status_code == 200 and "made-in-terminal" in r.text

                await poll(read)
    finally:
        await term.close()


async def test_the_lease_moves_to_another_replica_when_its_holder_is_killed(
    cluster: Cluster,
) -> None:
    holder, taker, bystander = cluster.replicas
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    other_sid = new_session(cluster.lb_url, user)
    # The bystander runs another session: nobody's recovery may touch it.
    other_term = await open_terminal(bystander.ws_url, user, other_sid)
    term = await open_terminal(holder.ws_url, user, sid)
    try:
        await term.run("mkdir burst")
        await term.ws.send(b"for i in $(seq 1000); do echo $i > burst/f$i; done\r")
        with user.client(taker.url) as c:

            def burst_files() -> list[str]:
                items = c.get(f"/api/workspace/{sid}/files").json()["items"]
                return [i["path"] for i in items if i["path"].startswith("burst/f")]

            await poll(burst_files)  # the holder is syncing the burst
            holder.kill()  # SIGKILL mid-burst: its sandbox lives on, another replica takes it over

            def taken_over() -> bool:
                return c.post(f"/api/sessions/{sid}/sandbox/start").status_code == 200

            await poll(taken_over, timeout=WAIT_S + LEASE_TTL_S)
            # What the dead holder synced is its file's content, or empty when the sync caught
            # the file between its creation and its write and the kill came before the rescan
            # (the last moments before a SIGKILL may be lost in this step: README).
            for path in burst_files()[:25]:
                r = c.get(f"/api/workspace/{sid}/file/{path}")
                assert r.json()["content"].strip() in ("", path.removeprefix("burst/f")), r.json()
        holder.start()  # its start-up recovery must not clobber the taker's or bystander's work
        with user.client(cluster.lb_url) as c:
            for s in (sid, other_sid):
                r = c.get(f"/api/sessions/{s}")
                assert r.status_code == 200
                assert r.json()["sandbox_status"] == "running", r.json()
        _, out = await other_term.run("echo still-$((6*7))")
        assert b"still-42" in out
    finally:
        await other_term.close()
        await term.close()
        if holder.proc is None or holder.proc.poll() is not None:
            holder.start()


async def test_a_rolling_restart_leaves_another_replicas_judge_job_running(
    cluster: Cluster,
) -> None:
    runner, *others = cluster.replicas
    user = register(cluster.lb_url)
    source = "import time\ntime.sleep(25)\nprint(6 * 7)\n"
    with user.client(runner.url) as c:
        r = c.post(
            "/api/executions",
            json={"language": "python", "source": source, "limits": {"wall_s": 55, "cpu_s": 5}},
        )
        assert r.status_code == 202, r.text
        job = r.json()["id"]

        def running() -> bool:
            return c.get(f"/api/executions/{job}").json()["status"] == "running"

        await poll(running)
    with user.client(cluster.lb_url) as c:
        for r_ in others:  # rolling: one at a time, each back up before the next
            r_.restart()
            # The restarted replica's recovery left the live replica's job alone.
            now = c.get(f"/api/executions/{job}").json()
            assert now["status"] == "running", now

        def finished() -> dict[str, Any] | None:
            got: dict[str, Any] = c.get(f"/api/executions/{job}").json()
            return got if got["status"] == "finished" else None

        done = await poll(finished, timeout=60)
    assert done["verdict"] == "accepted", done
    assert (done["stdout"] or "").strip() == "42"
