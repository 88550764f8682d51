"""Finding 8, judge starvation: one user's big batch must not make another user's job wait for
the whole batch (the queue was one FIFO shared by everyone). Both databases, real sandboxes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import Execution, User
from coolcoding.execution.judge import Judge
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.services.executions import ExecutionService
from coolcoding.services.ratelimit import RateLimiter
from tests.conftest import (
    LiveServer,
    make_database,
    make_settings,
    register_user,
    searchable,
    start_live_server,
)

pytestmark = pytest.mark.sandbox

WORKERS = 2
BATCH = 6


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        str(request.param),
        searchable(tmp_path_factory.mktemp(f"fair-{request.param}")),
        exec_workers=WORKERS,
        exec_queue_max_per_user=BATCH,
    )
    yield srv
    stop()


def finished(c: httpx.Client, eid: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = c.get(f"/api/executions/{eid}").json()
        if body["status"] == "finished":
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_another_users_job_does_not_wait_for_a_whole_batch(server: LiveServer) -> None:
    a, b = register_user(server, "batch"), register_user(server, "quick")
    slow = {"language": "bash", "source": "sleep 2; echo slow"}
    # Nor can one user fill the shared queue: a user's waiting jobs have their own cap.
    r = a.client.post("/api/executions/batch", json={"jobs": [slow] * (BATCH + 1)})
    assert r.status_code == 429 and r.json()["error"] == "too_many_queued", r.text
    assert r.json()["setting"] == "exec_queue_max_per_user" and r.headers["Retry-After"]
    r = a.client.post("/api/executions/batch", json={"jobs": [slow] * BATCH})
    assert r.status_code == 202, r.text
    a_ids = r.json()["ids"]
    r = b.client.post("/api/executions", json={"language": "python", "source": "print('hi')"})
    assert r.status_code == 202, r.text
    b_job = finished(b.client, r.json()["id"])
    a_jobs = [finished(a.client, eid) for eid in a_ids]
    assert b_job["verdict"] == "accepted" and b_job["stdout"] == "hi\n"
    assert all(j["verdict"] == "accepted" for j in a_jobs)

    def at(job: dict[str, Any], key: str) -> datetime:
        return datetime.fromisoformat(job[key])

    # Order, not durations: B's job ends before A's batch does, and it started as soon as a
    # worker was free (at most one job of A per worker got ahead of it), not after the batch.
    assert at(b_job, "completed_at") < max(at(j, "completed_at") for j in a_jobs)
    started_after_b = sum(at(j, "started_at") > at(b_job, "started_at") for j in a_jobs)
    assert started_after_b >= BATCH - 2 * WORKERS, [j["started_at"] for j in a_jobs]
    a.client.close()
    b.client.close()


def test_a_user_alone_uses_every_worker(server: LiveServer) -> None:
    """Fair share is work-conserving: with nobody else waiting, one user's jobs overlap."""
    a = register_user(server, "alone")
    slow = {"language": "bash", "source": "sleep 2"}
    r = a.client.post("/api/executions/batch", json={"jobs": [slow] * WORKERS})
    assert r.status_code == 202, r.text
    jobs = [finished(a.client, eid) for eid in r.json()["ids"]]
    first, second = sorted(jobs, key=lambda j: j["started_at"])
    assert second["started_at"] < first["completed_at"], jobs
    a.client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    db = make_database(str(request.param), tmp_path)
    yield db.url
    db.drop()


async def test_queued_jobs_survive_a_restart_in_fair_order(fresh_db: str, tmp_path: Path) -> None:
    """Recovery puts each user's persisted queued jobs back into that user's sub-queue, in
    order, as many as the per-user cap allows (the others are finished with a message)."""
    settings = make_settings(tmp_path, fresh_db, exec_queue_max_per_user=3)
    db = Database(settings)
    try:
        await upgrade(db.engine)
        async with db.session() as s:
            a, b = (User(username=n, email=f"{n}@example.com", password_hash="x") for n in "ab")
            s.add_all([a, b])
            await s.flush()
            owners = [a.id] * 5 + [b.id] * 2  # A's batch first, then B's jobs
            rows = [
                Execution(user_id=o, kind="judge", language="bash", status="queued") for o in owners
            ]
            s.add_all(rows)
            await s.commit()
        judge = Judge(None, LanguageRegistry(), settings)
        svc = ExecutionService(db, settings, LanguageRegistry(), judge, RateLimiter(10, 60))
        assert await svc.recover() == 5
        order = []
        while (picked := svc.queue._scheduler.pick()) is not None:
            order.append(picked)
            svc.queue._scheduler.done(picked[0])
        ids = [r.id for r in rows]
        assert order == [
            (a.id, ids[0]), (b.id, ids[5]), (a.id, ids[1]), (b.id, ids[6]), (a.id, ids[2])
        ]  # fmt: skip
        async with db.session() as s:
            left = {
                r.id: (r.status, r.message)
                for r in (await s.scalars(select(Execution).where(Execution.id.in_(ids[3:5]))))
            }
        assert left == {i: ("finished", "queue full after a server restart") for i in ids[3:5]}
    finally:
        await db.dispose()
