"""Idle stop across replicas, end to end: a terminal attached through a replica that does not
hold the session keeps its sandbox running past the idle timeout (its client lease tells the
holder); once that client leaves, the holder stops the sandbox. Two real replicas behind nginx,
PostgreSQL, Redis, real sandboxes; the idle timeout is a few seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.replicas.conftest import (
    Cluster,
    make_cluster,
    new_session,
    open_terminal,
    register,
)

IDLE_S = 4


@pytest.fixture(scope="module")
def idle_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"COOLCODING_SANDBOX_IDLE_TIMEOUT_S": str(IDLE_S)}
    with make_cluster(tmp_path_factory, n=2, extra_env=env) as c:
        yield c


async def test_a_client_on_another_replica_keeps_the_sandbox_from_idle_stop(
    idle_cluster: Cluster,
) -> None:
    a, b = idle_cluster.replicas
    user = register(idle_cluster.lb_url)
    sid = new_session(idle_cluster.lb_url, user)
    with user.client(a.url) as c:
        assert c.post(f"/api/sessions/{sid}/sandbox/start").status_code == 200
    assert await idle_cluster.lease_holder(sid) is a
    term = await open_terminal(b.ws_url, user, sid, "on-b")  # B only: A sees no client
    try:
        _, out = await term.run("echo $((6*7))")
        assert b"42" in out
        # Three idle timeouts with no keystroke: the client on B alone keeps it running.
        await asyncio.sleep(3 * IDLE_S + 2)
        with user.client(a.url) as c:
            assert c.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "running"
        _, out = await term.run("echo still-$((6*7))")
        assert b"still-42" in out
    finally:
        await term.close()
    # The client left: the holder stops it (bounded wait on a busy machine).
    deadline = time.monotonic() + 6 * IDLE_S + 30
    with user.client(a.url) as c:
        while c.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "running":
            assert time.monotonic() < deadline, "the idle sandbox was never stopped"
            await asyncio.sleep(0.5)
        assert c.get(f"/api/sessions/{sid}").json()["sandbox_status"] == "stopped"
