"""Live co-editing across real replicas (PostgreSQL, Redis, nginx): random concurrent edits of 5
clients through 2 replicas converge in every client, every replica's copy and the DB; a replica
killed with SIGKILL loses nothing a client typed (it reconnects through the load balancer)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import httpx
import websockets

from tests.collab_client import CollabClient
from tests.replicas.conftest import Cluster, User, new_session, register

PATH = "shared.txt"


def put(base_url: str, user: User, sid: str, content: str) -> None:
    with user.client(base_url) as c:
        r = c.post(f"/api/workspace/{sid}/file/{PATH}", json={"content": content})
        assert r.status_code in (200, 201), r.text


def db_text(base_url: str, user: User, sid: str) -> str:
    with user.client(base_url) as c:
        r = c.get(f"/api/workspace/{sid}/file/{PATH}")
        assert r.status_code == 200, r.text
        return str(r.json()["content"])


async def eventually(pred: object, timeout: float = 30) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def random_edit(rng: random.Random, tag: str) -> object:
    def fn(t: object) -> None:
        n = len(t)  # type: ignore[arg-type]
        if n > 20 and rng.random() < 0.35:
            start = rng.randrange(n - 1)
            count = min(rng.randint(1, 4), n - start)
            del t[start : start + count]  # type: ignore[index]
        else:
            t.insert(rng.randint(0, n), tag * rng.randint(1, 3))  # type: ignore[attr-defined]

    return fn


async def fresh_copy(ws_url: str, user: User, sid: str) -> str:
    """The document as a replica holds it (a new client's copy right after joining it there)."""
    c = CollabClient(f"{ws_url}/api/sessions/{sid}/collab", user.token)
    await c.connect()
    try:
        await c.join(PATH)
        return c.text(PATH)
    finally:
        await c.close()


async def test_five_clients_through_two_replicas_converge_in_clients_replicas_and_db(
    cluster: Cluster,
) -> None:
    r0, r1, _ = cluster.replicas
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    put(cluster.lb_url, user, sid, "start\n")
    clients = [
        CollabClient(f"{(r0, r1)[i % 2].ws_url}/api/sessions/{sid}/collab", user.token)
        for i in range(5)
    ]
    for c in clients:
        await c.connect()
        await c.join(PATH)
    try:
        rng = random.Random(2026)

        async def typist(i: int, c: CollabClient) -> None:
            local = random.Random(rng.random())
            for _ in range(120):
                # ASCII only: pycrdt's text positions are bytes.
                await c.edit(PATH, random_edit(local, "abcde"[i]))  # type: ignore[arg-type]
                await asyncio.sleep(local.random() * 0.01)

        await asyncio.gather(*(typist(i, c) for i, c in enumerate(clients)))
        await eventually(lambda: len({c.text(PATH) for c in clients}) == 1)
        final = clients[0].text(PATH)
        assert len(final) > 50
        await eventually(lambda: db_text(cluster.lb_url, user, sid) == final)
        for r in (r0, r1):
            assert await fresh_copy(r.ws_url, user, sid) == final
    finally:
        for c in clients:
            await c.close()


async def test_a_replica_killed_mid_typing_loses_nothing(cluster: Cluster) -> None:
    r0, _, r2 = cluster.replicas
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    put(cluster.lb_url, user, sid, "")
    victim = CollabClient(f"{r2.ws_url}/api/sessions/{sid}/collab", user.token)
    other = CollabClient(f"{r0.ws_url}/api/sessions/{sid}/collab", user.token)
    for c in (victim, other):
        await c.connect()
        await c.join(PATH)
    typed: list[str] = []
    try:
        for i in range(60):
            word = f"v{i} "
            typed.append(word)
            try:
                await victim.edit(PATH, lambda t, w=word: t.insert(len(t), w))
            except websockets.ConnectionClosed:
                pass  # already in the local copy; sent when it reconnects
            if i == 30:
                r2.kill()  # SIGKILL: no shutdown hook, no save, no lease given back
                # The client reconnects through the load balancer (r2 is gone: r0 or r1).
                victim.url = f"{cluster.lb_ws_url}/api/sessions/{sid}/collab"
                await victim.reconnect()
            await other.edit(PATH, lambda t, i=i: t.insert(0, f"o{i} "))
            await asyncio.sleep(0.01)
        await eventually(lambda: victim.text(PATH) == other.text(PATH))
        final = victim.text(PATH)
        for word in typed:
            assert word in final, word
        for i in range(60):
            assert f"o{i} " in final
        await eventually(lambda: db_text(cluster.lb_url, user, sid) == final, timeout=40)
    finally:
        await victim.close()
        await other.close()
        if r2.proc is not None and r2.proc.poll() is not None:
            with contextlib.suppress(Exception):
                r2.start()


def test_the_replicas_answer(cluster: Cluster) -> None:
    for r in cluster.replicas[:2]:
        assert httpx.get(f"{r.url}/api/health/", timeout=5).status_code == 200
