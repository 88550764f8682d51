"""Issue 10: a ``?wait=true`` job of the in-memory queue takes two writes (its INSERT, then one
UPDATE that finishes it) instead of three (no claim write). Kept: a job is never lost (a server
SIGKILLed mid-job runs it again at restart) and finished once (the finishing UPDATE holds only
while the row is still queued and this replica's). Both databases, real sandboxes."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import (
    LiveServer,
    make_database,
    register_user,
    searchable,
    start_live_server,
)
from tests.serve_helpers import ServeProcess, serve_log

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        str(request.param),
        searchable(tmp_path_factory.mktemp(f"fold-{request.param}")),
        exec_wait_max_s=5,
    )
    yield srv
    stop()


def writes_to_executions(srv: LiveServer, job: dict[str, Any], *, wait: bool) -> list[str]:
    """The INSERT/UPDATE statements on ``executions`` while the server runs ``job``."""
    seen: list[str] = []
    engine = srv.platform.db.engine.sync_engine

    def record(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        head = " ".join(statement.split()[:3]).upper()
        if head.startswith(("INSERT INTO EXECUTIONS", "UPDATE EXECUTIONS")):
            seen.append(head.split()[0])

    def record_one_hop(statement: str) -> None:  # Database.write's raw paths: no cursor events
        record(None, None, statement)

    listeners = srv.platform.db.write_listeners
    u = register_user(srv)
    event.listen(engine, "before_cursor_execute", record)
    listeners.append(record_one_hop)
    try:
        r = u.client.post(f"/api/executions?wait={str(wait).lower()}", json=job)
        assert r.status_code in (200, 202), r.text
        body = r.json()
        deadline = time.monotonic() + 60
        while body["status"] != "finished":
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
            body = u.client.get(f"/api/executions/{body['id']}").json()
        assert body["verdict"] == "accepted" and body["stdout"] == "hi\n", body
        assert body["started_at"] and body["completed_at"] >= body["started_at"]
    finally:
        event.remove(engine, "before_cursor_execute", record)
        listeners.remove(record_one_hop)
        u.client.close()
    return seen


def test_a_waited_job_is_saved_and_finished_in_two_writes(server: LiveServer) -> None:
    job = {"language": "python", "source": "print('hi')"}
    assert writes_to_executions(server, job, wait=True) == ["INSERT", "UPDATE"]
    # Without ?wait the job shows "running" while it runs: claimed, then finished.
    assert writes_to_executions(server, job, wait=False) == ["INSERT", "UPDATE", "UPDATE"]


def test_a_waited_job_taken_by_another_replica_is_not_finished_twice(server: LiveServer) -> None:
    """Another replica's recovery re-owned the queued row meanwhile (this one's lease lapsed):
    this run's result is dropped, the row is left to the replica that holds it now."""
    u = register_user(server)
    engine = server.platform.db.engine.sync_engine
    taken = threading.Event()

    def steal(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EXECUTIONS") and not taken.is_set():
            taken.set()

    def steal_one_hop(statement: str) -> None:  # Database.write's raw paths: no cursor events
        steal(None, None, statement)

    listeners = server.platform.db.write_listeners
    event.listen(engine, "after_cursor_execute", steal)
    listeners.append(steal_one_hop)
    result: dict[str, Any] = {}

    def post() -> None:
        r = u.client.post(
            "/api/executions?wait=true",
            json={"language": "bash", "source": "sleep 1; echo late"},
            timeout=120,
        )
        result["r"] = r

    t = threading.Thread(target=post)
    t.start()
    try:
        assert taken.wait(30)
        time.sleep(0.3)  # committed, running in its sandbox
        db_run(server.settings.database_url,
               "UPDATE executions SET owner = 'another-replica' WHERE status = 'queued'")  # fmt: skip
        t.join(120)
    finally:
        event.remove(engine, "after_cursor_execute", steal)
        listeners.remove(steal_one_hop)
    rows = db_run(
        server.settings.database_url,
        "SELECT status, verdict, owner FROM executions WHERE owner = 'another-replica'",
    )
    assert rows == [("queued", None, "another-replica")], rows  # not finished by this run
    assert result["r"].status_code == 202 and result["r"].json()["status"] == "queued"
    db_run(server.settings.database_url,
           "DELETE FROM executions WHERE owner = 'another-replica'")  # fmt: skip
    u.client.close()


def db_run(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                res = await conn.execute(text(sql))
                return [tuple(r) for r in res.all()] if res.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture(params=["sqlite", "postgres"])
def platform_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "data").mkdir()
    data = searchable(tmp_path / "data")
    db = make_database(str(request.param), data)
    env = {
        "database_url": db.url,
        "sandbox_cgroup_parent": f"coolcoding-test-fold-{secrets.token_hex(4)}",
        "sandbox_keep_on_shutdown": "false",
    }
    yield data, env
    db.drop()


def test_a_server_killed_mid_job_runs_the_waited_job_again_and_finishes_it_once(
    platform_env: tuple[Path, dict[str, str]],
) -> None:
    data, env = platform_env
    url = env["database_url"]
    srv = ServeProcess(data, **env)
    try:
        client = httpx.Client(base_url=srv.base_url, timeout=30)
        name = f"f{secrets.token_hex(5)}"
        r = client.post("/api/users/register", json={
            "username": name, "email": f"{name}@example.com", "password": "correct horse b"})  # fmt: skip
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"

        def post() -> None:
            try:
                client.post(
                    "/api/executions?wait=true",
                    json={"language": "bash", "source": "sleep 2; echo once"},
                    timeout=60,
                )
            except httpx.HTTPError:
                pass  # the server is killed under it

        t = threading.Thread(target=post)
        t.start()
        deadline = time.monotonic() + 30
        while not db_run(url, "SELECT id FROM executions"):
            assert time.monotonic() < deadline, serve_log(data)
            time.sleep(0.05)
        time.sleep(1.0)  # the job runs in its sandbox
        srv.kill()  # SIGKILL between the job's INSERT and its finishing UPDATE
        t.join(30)
        [(status, verdict)] = db_run(url, "SELECT status, verdict FROM executions")
        assert (status, verdict) == ("queued", None)  # not lost: still waiting

        srv = ServeProcess(data, **env)  # recovery queues it again and runs it
        deadline = time.monotonic() + 60
        while True:
            rows = db_run(url, "SELECT status, verdict, stdout FROM executions")
            if rows[0][0] == "finished":
                break
            assert time.monotonic() < deadline, (rows, serve_log(data))
            time.sleep(0.1)
        assert len(rows) == 1
        status, verdict, stdout = rows[0]
        assert verdict == "accepted" and bytes(stdout) == b"once\n", rows
        client.close()
    finally:
        srv.terminate()
