"""Finding 12: with PostgreSQL unreachable every route answered 500 internal_error. Now: 503
``database_unavailable`` with Retry-After (and WebSocket close 4503), and recovery when it returns.

The outage is real: the app reaches PostgreSQL through a TCP proxy that the test stops (refusing
new connections and cutting the pooled ones) and restarts; the shared server keeps running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
import websockets.sync.client as ws_client

from coolcoding.app import create_app
from tests.conftest import (
    LiveServer,
    _free_port,
    _ServerThread,
    make_database,
    make_settings,
    searchable,
)
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[tuple[LiveServer, TcpProxy]]:
    searchable(tmp_path)
    db = make_database("postgres", tmp_path)
    url = urlsplit(db.url)
    proxy = TcpProxy((url.hostname or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = db.url.replace(f"@{url.hostname}:{url.port}/", f"@127.0.0.1:{proxy.port}/")
    assert proxied != db.url
    settings = make_settings(
        tmp_path, proxied, auth_cache_ttl_s=0, sandbox_pool_size=0, exec_workers=1
    )
    app = create_app(settings)
    thread = _ServerThread(app, _free_port())
    thread.start()
    base = f"http://127.0.0.1:{thread.server.config.port}"
    try:
        yield LiveServer(base, settings, app, "postgres"), proxy
    finally:
        if proxy._listener is None:
            proxy.start()
        thread.stop()
        proxy.stop()
        db.drop()


def _calls(c: httpx.Client, uuid: str) -> dict[str, httpx.Response]:
    return {
        "login": c.post(
            "/api/users/login", json={"username": "dbdown", "password": "correct horse"}
        ),
        "sessions": c.get("/api/sessions/"),
        "read": c.get(f"/api/workspace/{uuid}/file/main.py"),
        "save": c.post(f"/api/workspace/{uuid}/file/main.py", json={"content": "print(2)\n"}),
        "executions": c.get("/api/executions"),
        "submit": c.post("/api/executions", json={"language": "python", "source": "print(1)"}),
    }


def test_routes_answer_503_while_the_database_is_down_and_recover(
    proxied_server: tuple[LiveServer, TcpProxy],
) -> None:
    server, proxy = proxied_server
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        r = c.post(
            "/api/users/register",
            json={"username": "dbdown", "email": "dbdown@example.com", "password": "correct horse"},
        )
        assert r.status_code == 201, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        uuid = c.post("/api/sessions/", json={"name": "s"}).json()["uuid"]
        r = c.post(f"/api/workspace/{uuid}/file/main.py", json={"content": "print(1)\n"})
        assert r.status_code in (200, 201), r.text

        proxy.stop()
        for name, r in _calls(c, uuid).items():
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.json()["error"] == "database_unavailable", (name, r.text)
            assert int(r.headers["Retry-After"]) > 0, name

        # The events WebSocket closes with the matching code instead of an error.
        with (
            pytest.raises(websockets.exceptions.ConnectionClosed) as closed,
            ws_client.connect(
                f"{server.ws_url}/api/sessions/{uuid}/events",
                additional_headers={"Authorization": c.headers["Authorization"]},
            ) as ws,
        ):
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503

        proxy.start()
        for name, r in _calls(c, uuid).items():
            assert r.status_code in (200, 201, 202), (name, r.status_code, r.text)


def test_sqlite_unable_to_open_is_503(tmp_path: Path) -> None:
    """SQLite: a database file that cannot be opened any more answers 503 too."""
    from sqlalchemy import text

    from coolcoding.api.errors import database_unavailable

    async def attempt() -> BaseException:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("opened a database in a missing directory")

    assert database_unavailable(asyncio.run(attempt()))
