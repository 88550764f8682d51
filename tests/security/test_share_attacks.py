"""Attacks on sharing: public link tokens are not credentials, never reach a terminal or a write,
are stored only as hashes; guessed tokens find nothing; a pending invitee or a stranger cannot
tell a shared session from a missing one."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import (
    LiveServer,
    module_live_server,
    register_user,
    searchable,
    start_live_server,
)
from tests.integration.test_share_policy import app_routes

server = module_live_server(
    "shatk",
    runtime="kubernetes",
    public_link_rate_limit_per_minute=1000,
)


def test_public_routes_only_read(tmp_path: Path) -> None:
    """The only public route that is not a GET is the fork, which needs a login of its own."""
    public = {
        (m, r.path)
        for r in app_routes(tmp_path)
        if r.path.startswith("/api/public")
        for m in r.methods
    }
    assert {m for m, _ in public} <= {"GET", "HEAD", "POST"}
    assert {p for m, p in public if m == "POST"} == {"/api/public/{token}/fork"}
    assert not any("terminal" in p or "sandbox" in p or "run/" in p for _, p in public)


def test_a_link_token_is_no_credential(server: LiveServer) -> None:
    owner = register_user(server, "o")
    sid = owner.new_session("s")
    owner.client.post(f"/api/workspace/{sid}/file/a.txt", json={"content": "x"})
    token = owner.client.post(f"/api/sessions/{sid}/links", json={}).json()["token"]
    for headers, cookies in (
        ({"Authorization": f"Bearer {token}"}, {}),
        ({}, {"cc_session": token}),
    ):
        c = httpx.Client(base_url=server.base_url, headers=headers, cookies=cookies)
        for method, url in (
            ("GET", f"/api/workspace/{sid}/files"),
            ("POST", f"/api/workspace/{sid}/file/a.txt"),
            ("GET", f"/api/sessions/{sid}/terminals"),
            ("POST", f"/api/sessions/{sid}/run"),
        ):
            r = c.request(method, url, json={"content": "evil"})
            assert r.status_code == 401, (method, url, r.text)
        c.close()
    # Nor a session id, nor a way into a terminal WebSocket.
    assert owner.client.get(f"/api/workspace/{token}/files").status_code == 404

    async def ws() -> int:
        conn = await websockets.connect(
            f"{server.ws_url}/api/sessions/{sid}/terminals/t1",
            additional_headers={"Cookie": f"cc_session={token}"},
        )
        try:
            async with asyncio.timeout(5):
                while True:
                    await conn.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code
        raise AssertionError("unreachable")

    assert asyncio.run(ws()) == 4401
    # The write routes do not exist under /api/public.
    anon = httpx.Client(base_url=server.base_url)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = anon.request(method, f"/api/public/{token}/file/a.txt", json={"content": "evil"})
        assert r.status_code == 405, (method, r.status_code)
    assert owner.client.get(f"/api/workspace/{sid}/file/a.txt").json()["content"] == "x"
    anon.close()
    owner.client.close()


def test_only_the_token_hash_is_stored(server: LiveServer) -> None:
    owner = register_user(server, "o")
    sid = owner.new_session("s")
    token = owner.client.post(f"/api/sessions/{sid}/links", json={}).json()["token"]

    async def stored() -> list[str]:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(server.settings.database_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT token_hash FROM public_links"))
                return [str(r[0]) for r in rows]
        finally:
            await engine.dispose()

    hashes = asyncio.run(stored())
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert token not in hashes
    owner.client.close()


def test_guessed_tokens_find_nothing(server: LiveServer) -> None:
    anon = httpx.Client(base_url=server.base_url)
    for guess in ("", "a", "0" * 43, "..%2F..%2Fetc%2Fpasswd", "x" * 200):
        r = anon.get(f"/api/public/{guess}")
        assert r.status_code in (404, 422), (guess, r.status_code)
        if r.status_code == 404 and r.headers["content-type"].startswith("application/json"):
            assert r.json()["error"] in ("link_not_found", "not_found")
    anon.close()


def test_rate_limit_on_public_links(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv, stop = start_live_server(
        "sqlite",
        searchable(tmp_path_factory.mktemp("shrl")),
        runtime="kubernetes",
        public_link_rate_limit_per_minute=5,
    )
    try:
        anon = httpx.Client(base_url=srv.base_url)
        codes = [anon.get(f"/api/public/{'A' * 43}").status_code for _ in range(7)]
        assert codes[:5] == [404] * 5 and codes[5:] == [429, 429]
        anon.close()
    finally:
        stop()
