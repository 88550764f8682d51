"""``coolcoding serve --workers N``: which settings allow N > 1, and the supervisor's refusal
(exit 2, before anything is migrated or bound). The processes themselves:
tests/replicas/test_workers.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coolcoding.settings import Settings, get_settings
from coolcoding.workers import WorkerHeader, worker_data_dir, workers_problem

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/x"
REDIS = "redis://127.0.0.1:6379/0"


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(environment="test", data_dir=tmp_path, **values)


def test_one_worker_needs_nothing(tmp_path: Path) -> None:
    assert workers_problem(_settings(tmp_path), 1) is None


def test_several_workers_need_postgresql_and_redis(tmp_path: Path) -> None:
    assert workers_problem(_settings(tmp_path, database_url=PG, redis_url=REDIS), 4) is None
    sqlite = workers_problem(_settings(tmp_path, redis_url=REDIS), 2)
    assert sqlite is not None and "PostgreSQL" in sqlite and "Redis" not in sqlite
    no_redis = workers_problem(_settings(tmp_path, database_url=PG), 2)
    assert no_redis is not None and "COOLCODING_REDIS_URL" in no_redis
    assert "PostgreSQL" not in no_redis
    both = workers_problem(_settings(tmp_path), 2)
    assert both is not None and "PostgreSQL" in both and "COOLCODING_REDIS_URL" in both


def test_zero_workers_is_refused(tmp_path: Path) -> None:
    assert workers_problem(_settings(tmp_path), 0) is not None
    with pytest.raises(ValueError):
        _settings(tmp_path, workers=0)


def test_worker_dirs_are_under_the_data_dir_and_stable(tmp_path: Path) -> None:
    assert worker_data_dir(tmp_path, 1) == tmp_path.resolve() / "workers" / "1"
    assert worker_data_dir(tmp_path, 1) != worker_data_dir(tmp_path, 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COOLCODING_REDIS_URL": REDIS}, "PostgreSQL"),
        ({"COOLCODING_DATABASE_URL": PG}, "COOLCODING_REDIS_URL"),
    ],
)
def test_serve_refuses_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    from coolcoding.cli import app

    for k in ("COOLCODING_DATABASE_URL", "COOLCODING_REDIS_URL", "COOLCODING_WORKERS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("COOLCODING_DATA_DIR", str(tmp_path))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--workers", "2", "--port", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "workers").exists()  # refused before anything was made


def test_the_worker_header_is_added_to_http_responses_only() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})

    async def send(message: dict[str, Any]) -> None:
        seen.append(message)

    asyncio.run(WorkerHeader(app, 3)({"type": "http"}, None, send))
    assert seen[0]["headers"] == [(b"a", b"b"), (b"x-coolcoding-worker", b"3")]
    seen.clear()
    asyncio.run(WorkerHeader(app, 3)({"type": "websocket"}, None, send))
    assert seen[0]["headers"] == [(b"a", b"b")]


def test_the_supervisor_restarts_a_dead_worker_and_stops_all_on_a_signal() -> None:
    import signal
    import subprocess
    import threading
    import time

    from coolcoding.workers import Supervisor

    started: list[tuple[int, subprocess.Popen[bytes]]] = []

    def spawn(index: int) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["sleep", "60"])
        started.append((index, p))
        return p

    sup = Supervisor(2, spawn, poll_s=0.02)

    def drive() -> None:
        deadline = time.monotonic() + 20
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started[0][1].kill()  # worker 0 dies: restarted after the back-off
        while len(started) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        sup._signals.append(signal.SIGTERM)  # as the handler does on SIGTERM

    t = threading.Thread(target=drive)
    t.start()
    try:
        assert sup.run() == 0  # the workers' SIGTERM exits count as clean
    finally:
        t.join()
        for _, p in started:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [i for i, _ in started] == [0, 1, 0]
    assert [p.returncode for _, p in started] == [-signal.SIGKILL, -signal.SIGTERM, -signal.SIGTERM]
