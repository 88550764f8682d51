"""WebSockets of shared sessions: who may connect, and a revoked (or downgraded) member is
disconnected from every open socket within 2 s, on one replica and across two (Redis bus)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from coolcoding.app import create_app
from tests.conftest import (
    LiveServer,
    UserClient,
    _free_port,
    _ServerThread,
    make_database,
    make_settings,
    module_live_server,
    register_user,
    searchable,
)
from tests.sandbox_helpers import cookie

REDIS_URL = "redis://127.0.0.1:6379/0"


server = module_live_server(
    "sharews",
    runtime="kubernetes",
    share_cache_ttl_s=30.0,
)


def shared_session(owner: UserClient, member: UserClient, role: str) -> str:
    sid = owner.new_session("ws")
    r = owner.client.post(
        f"/api/sessions/{sid}/members", json={"user": member.username, "role": role}
    )
    assert r.status_code == 201, r.text
    assert member.client.post(f"/api/invitations/{sid}/accept").status_code == 200
    return sid


async def open_events(srv: LiveServer, u: UserClient, sid: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"{srv.ws_url}/api/sessions/{sid}/events", additional_headers=cookie(u)
    )
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["type"] == "sandbox_status", first
    return ws


async def closed_within(ws: websockets.ClientConnection, seconds: float) -> int:
    """The close code, once the server closed the socket (fails after ``seconds``)."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code
    raise AssertionError("unreachable")


async def test_non_member_and_pending_cannot_connect(server: LiveServer) -> None:
    owner, other = register_user(server, "o"), register_user(server, "x")
    sid = owner.new_session("ws")
    owner.client.post(f"/api/sessions/{sid}/members", json={"user": other.username})
    for u in (other,):
        ws = await websockets.connect(
            f"{server.ws_url}/api/sessions/{sid}/events", additional_headers=cookie(u)
        )
        assert await closed_within(ws, 5) == 4404
    owner.client.close()
    other.client.close()


async def test_revoked_member_is_disconnected_within_2s(server: LiveServer) -> None:
    owner, member = register_user(server, "o"), register_user(server, "m")
    sid = shared_session(owner, member, "editor")
    mine = await open_events(server, owner, sid)
    theirs = [await open_events(server, member, sid) for _ in range(3)]
    started = time.monotonic()
    r = await asyncio.to_thread(
        owner.client.delete, f"/api/sessions/{sid}/members/{member.user_id}"
    )
    assert r.status_code == 204
    for ws in theirs:
        assert await closed_within(ws, 2.0) == 4403
    assert time.monotonic() - started < 2.0
    # The owner's socket stays open and live.
    await mine.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(mine.recv(), 5))["type"] == "pong"
    await mine.close()
    # And the member cannot come back.
    ws = await websockets.connect(
        f"{server.ws_url}/api/sessions/{sid}/events", additional_headers=cookie(member)
    )
    assert await closed_within(ws, 5) == 4404
    owner.client.close()
    member.client.close()


async def test_role_change_closes_the_sockets_to_reconnect_with_the_new_role(
    server: LiveServer,
) -> None:
    owner, member = register_user(server, "o"), register_user(server, "m")
    sid = shared_session(owner, member, "editor")
    ws = await open_events(server, member, sid)
    r = await asyncio.to_thread(
        owner.client.put,
        f"/api/sessions/{sid}/members/{member.user_id}",
        json={"role": "viewer"},
    )
    assert r.status_code == 200
    assert await closed_within(ws, 2.0) == 4403
    again = await open_events(server, member, sid)  # a viewer still watches
    await again.close()
    owner.client.close()
    member.client.close()


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    """Two API servers on one PostgreSQL database, their event buses joined by Redis."""
    base = searchable(tmp_path_factory.mktemp("sharerep"))
    db = make_database("postgres", base)
    servers, threads = [], []
    for i in range(2):
        data = Path(base / f"r{i}")
        data.mkdir()
        searchable(data)
        settings = make_settings(
            data, db.url, runtime="kubernetes", redis_url=REDIS_URL, share_cache_ttl_s=30.0
        )
        app = create_app(settings)
        port = _free_port()
        thread = _ServerThread(app, port)
        thread.start()
        threads.append(thread)
        servers.append(LiveServer(f"http://127.0.0.1:{port}", settings, app, "postgres"))
    yield servers
    for t in threads:
        t.stop()
    db.drop()


async def test_revocation_reaches_the_other_replica(two_replicas: list[LiveServer]) -> None:
    a, b = two_replicas
    owner, member = register_user(a, "o"), register_user(a, "m")
    sid = shared_session(owner, member, "viewer")
    # The member's socket and cached role live on replica b; the owner revokes through a.
    ws = await open_events(b, member, sid)
    import httpx

    via_b = httpx.Client(base_url=b.base_url, cookies={"cc_session": member.token})
    assert via_b.get(f"/api/workspace/{sid}/files").status_code == 200  # cached on b now
    started = time.monotonic()
    r = await asyncio.to_thread(
        owner.client.delete, f"/api/sessions/{sid}/members/{member.user_id}"
    )
    assert r.status_code == 204
    assert await closed_within(ws, 2.0) == 4403
    assert time.monotonic() - started < 2.0
    # b's cache (TTL 30 s) was dropped by the bus message too.
    assert via_b.get(f"/api/workspace/{sid}/files").status_code == 404
    via_b.close()
    owner.client.close()
    member.client.close()
