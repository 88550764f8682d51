"""Shared fixtures: real servers over real HTTP, on SQLite and on the real PostgreSQL of this machine.

- ``backend``: "sqlite" | "postgres" (every data-layer/API test runs on both).
- ``live_server``: a uvicorn server in a background thread, one per backend per test session, with a
  fresh database (a new PostgreSQL database per run, dropped at the end) and its own data dir.
- ``sqlite_server``: one SQLite-backed server, for tests where the database is not the subject.
- ``api``/``make_user``: an httpx client logged in as a fresh user.
- ``user``: the same on the module's own ``server`` fixture (a module that defines one).

PostgreSQL is reached at COOLCODING_TEST_PG_ADMIN_URL (default: postgres@127.0.0.1:5432, trust auth).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from coolcoding.app import create_app
from coolcoding.platform import Platform
from coolcoding.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "COOLCODING_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser tests run last: Playwright's sync API keeps an event loop running in the main
    thread while its session fixture lives, and ``asyncio.run`` refuses to start under it."""
    e2e = Path(__file__).parent / "e2e"
    items.sort(key=lambda item: e2e in item.path.parents)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class TestDatabase:
    url: str
    drop: Callable[[], None]


def make_database(backend: str, data_dir: Path) -> TestDatabase:
    """A fresh, empty database for ``backend``."""
    if backend == "sqlite":
        return TestDatabase(f"sqlite+aiosqlite:///{data_dir / 'test.db'}", lambda: None)
    name = f"cc_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - the machine's PostgreSQL must be up
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc} (run scripts/services.sh)"
        )
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")

    def drop() -> None:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return TestDatabase(f"{base}/{name}", drop)


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "database_url": database_url,
        "sandbox_cgroup_parent": f"coolcoding-test-{os.getpid()}-{secrets.token_hex(3)}",
        "login_rate_limit": 1000,
        "register_rate_limit": 100_000,
        # In-process test servers stop their sandboxes at shutdown (nothing outlives a test);
        # tests/integration/test_sandbox_outlives_server.py checks the default.
        "sandbox_keep_on_shutdown": False,
        # Sessions start lazily in the suites, as they were written for; the session pool's own
        # tests turn it on (COOLCODING_TEST_SESSION_POOL=2 runs every suite with it).
        "sandbox_session_pool_size": int(os.environ.get("COOLCODING_TEST_SESSION_POOL", "0")),
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    app: Any
    backend: str

    @property
    def platform(self) -> Platform:
        platform: Platform = self.app.state.platform
        return platform

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")


class _ServerThread:
    def __init__(self, app: Any, port: int) -> None:
        settings: Settings = app.state.platform.settings
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws_max_size=1 << 20,
            ws_per_message_deflate=settings.ws_compression,
            proxy_headers=False,  # as ``coolcoding serve``: api/clientip.py decides
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def searchable(path: Path) -> Path:
    """Sandbox uids must traverse the data dir's ancestors; pytest makes its temp dirs 0700."""
    for p in [path, *path.parents]:
        if str(p).startswith("/tmp/"):
            os.chmod(p, os.stat(p).st_mode | 0o011)
    return path


def start_live_server(
    backend: str, data_dir: Path, **overrides: Any
) -> tuple[LiveServer, Callable[[], None]]:
    searchable(data_dir)
    db = make_database(backend, data_dir)
    settings = make_settings(data_dir, db.url, **overrides)
    app = create_app(settings)
    port = _free_port()
    thread = _ServerThread(app, port)
    thread.start()
    server = LiveServer(f"http://127.0.0.1:{port}", settings, app, backend)

    def stop() -> None:
        thread.stop()
        db.drop()

    return server, stop


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def module_live_server(prefix: str, **overrides: Any) -> Any:
    """A fixture: one live server per test module on each database, with these settings
    (``server = module_live_server("sync")`` in the module)."""

    @pytest.fixture(scope="module", params=["sqlite", "postgres"])
    def server(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[LiveServer]:
        srv, stop = start_live_server(
            request.param,
            searchable(tmp_path_factory.mktemp(f"{prefix}-{request.param}")),
            **overrides,
        )
        yield srv
        stop()

    return server


@pytest.fixture(scope="session")
def live_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server, stop = start_live_server(backend, tmp_path_factory.mktemp(f"live-{backend}"))
    yield server
    stop()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server, stop = start_live_server("sqlite", tmp_path_factory.mktemp("live-sqlite-only"))
    yield server
    stop()


@dataclass
class UserClient:
    """An httpx client logged in (cookie) as a fresh user of ``server``."""

    client: httpx.Client
    username: str
    password: str
    token: str
    user_id: int
    server: LiveServer

    def new_session(self, name: str = "test", **kw: Any) -> str:
        r = self.client.post("/api/sessions/", json={"name": name, **kw})
        assert r.status_code == 201, r.text
        return str(r.json()["uuid"])


def register_user(server: LiveServer, prefix: str = "u") -> UserClient:
    username = f"{prefix}{secrets.token_hex(5)}"
    password = "correct horse battery"
    client = httpx.Client(base_url=server.base_url, timeout=30)
    r = client.post(
        "/api/users/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return UserClient(client, username, password, body["token"], body["user"]["id"], server)


@pytest.fixture
def make_user(live_server: LiveServer) -> Iterator[Callable[[], UserClient]]:
    made: list[UserClient] = []

    def _make() -> UserClient:
        u = register_user(live_server)
        made.append(u)
        return u

    yield _make
    for u in made:
        u.client.close()


@pytest.fixture
def api(make_user: Callable[[], UserClient]) -> UserClient:
    return make_user()


@pytest.fixture
def user(server: LiveServer) -> Iterator[UserClient]:
    u = register_user(server)
    yield u
    u.client.close()
