"""Judge workers on the database queue (PostgreSQL ``FOR UPDATE SKIP LOCKED``), as real
``coolcoding worker`` processes: a worker killed with SIGKILL mid-job loses the job to another
worker, which finishes it; SIGTERM drains (the running job finishes, nothing new is claimed).
Also the queue's SQL alone: leases, fencing by attempt, retries, fair share."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import inspect, text

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import Execution, User
from coolcoding.execution.db_queue import DONE_CHANNEL, DbQueue
from coolcoding.execution.judge import Judge, JudgeResult
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.execution.verdicts import Verdict
from coolcoding.sandbox.registry import make_runtime
from coolcoding.services.executions import ExecutionService, JobRequest
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.settings import Settings
from tests.conftest import make_database, make_settings

CLI = [sys.executable, "-c", "from coolcoding.cli import main; main()"]
SLOW = "import time\ntime.sleep(4)\nprint('done')\n"


@dataclass
class Env:
    settings: Settings
    data_dir: Path
    env: dict[str, str]


@pytest.fixture
def pg_env() -> Iterator[Env]:
    data_dir = Path(tempfile.mkdtemp(prefix="cc-workers-"))
    data_dir.chmod(0o711)  # sandbox uids traverse it
    db = make_database("postgres", data_dir)
    overrides: dict[str, Any] = {
        "exec_queue": "database",
        "exec_embedded_worker": False,
        "exec_worker_lease_s": 3.0,
        "exec_queue_poll_s": 0.2,
        "sandbox_pool_size": 0,
    }
    settings = make_settings(data_dir, db.url, **overrides)
    env = {
        **os.environ,
        "COOLCODING_ENVIRONMENT": "test",
        "COOLCODING_DATA_DIR": str(data_dir),
        "COOLCODING_DATABASE_URL": db.url,
        "COOLCODING_SANDBOX_CGROUP_PARENT": settings.sandbox_cgroup_parent,
        **{f"COOLCODING_{k.upper()}": str(v).lower() for k, v in overrides.items()},
    }
    yield Env(settings, data_dir, env)
    db.drop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def service(pg_env: Env) -> AsyncIterator[tuple[ExecutionService, int]]:
    """A submitting server (no embedded worker) and a user."""
    db = Database(pg_env.settings)
    await upgrade(db.engine)
    async with db.session() as s:
        user = User(username=f"u{secrets.token_hex(4)}", email="u@example.com", password_hash="x")
        s.add(user)
        await s.commit()
        user_id = user.id
    judge = Judge(None, LanguageRegistry(), pg_env.settings)
    svc = ExecutionService(db, pg_env.settings, judge.languages, judge, RateLimiter(10_000, 60))
    await svc.start()
    yield svc, user_id
    await svc.stop()
    await db.dispose()


def start_worker(env: Env) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "worker", "--slots", "1"],
        env=env.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "ready" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the worker did not start: {proc.stdout.read()}")


async def row_of(svc: ExecutionService, job_id: int) -> Execution:
    row = await svc.load(job_id)
    assert row is not None
    return row


async def wait_for(svc: ExecutionService, job_id: int, status: str, timeout_s: float) -> Execution:
    deadline = time.monotonic() + timeout_s
    while True:
        row = await row_of(svc, job_id)
        if row.status == status:
            return row
        assert time.monotonic() < deadline, f"job {job_id} is {row.status}, not {status}"
        await asyncio.sleep(0.1)


def slow_job() -> JobRequest:
    return JobRequest(language="python", source=SLOW, expected_output="done\n",
                      limits={"wall_s": 30})  # fmt: skip


@pytest.mark.sandbox
async def test_a_job_whose_worker_is_killed_finishes_on_another_worker(
    pg_env: Env, service: tuple[ExecutionService, int]
) -> None:
    svc, user_id = service
    workers = [start_worker(pg_env), start_worker(pg_env)]  # both ready before the job
    try:
        [row] = await svc.submit(user_id, [slow_job()])
        running = await wait_for(svc, row.id, "running", 120)
        assert running.attempt == 1
        [holder] = [w for w in workers if f":{w.pid}:" in (running.worker or "")]
        holder.send_signal(signal.SIGKILL)  # mid-job: the program sleeps 4 s
        holder.wait(10)
        done = await wait_for(svc, row.id, "finished", 180)
        assert done.verdict == Verdict.ACCEPTED.value, done.message
        assert done.stdout == b"done\n"
        assert done.attempt == 2  # the other worker's try wrote the result
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.mark.sandbox
async def test_sigterm_drains_a_worker(pg_env: Env, service: tuple[ExecutionService, int]) -> None:
    svc, user_id = service
    worker = start_worker(pg_env)
    try:
        [row] = await svc.submit(user_id, [slow_job()])
        await wait_for(svc, row.id, "running", 60)
        [later] = await svc.submit(user_id, [JobRequest(language="python", source="print(1)")])
        worker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(worker.communicate, timeout=60)
        assert worker.returncode == 0, out
        assert "drained: 1 jobs finished" in out
        done = await row_of(svc, row.id)
        assert done.status == "finished" and done.verdict == Verdict.ACCEPTED.value
        assert done.attempt == 1
        assert (await row_of(svc, later.id)).status == "queued"  # not taken while draining
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


# --- the queue's SQL alone (no worker processes) ------------------------------------------------


async def expire(svc: ExecutionService, job_id: int) -> None:
    async with svc.db.session() as s:
        await s.execute(text("UPDATE executions SET lease_until = now() - interval '1 second' "
                             "WHERE id = :id"), {"id": job_id})  # fmt: skip
        await s.commit()


async def test_a_lapsed_lease_requeues_and_fences_the_old_try(
    service: tuple[ExecutionService, int],
) -> None:
    svc, user_id = service
    assert svc.dbq is not None
    [row] = await svc.submit(user_id, [JobRequest(language="python", source="print(1)")])
    first = await svc.dbq.claim()
    assert first is not None and first.id == row.id and first.attempt == 1
    assert await svc.dbq.claim() is None  # claimed once
    assert await svc.dbq.renew(first)
    await expire(svc, row.id)
    assert await svc.dbq.reap() == 1
    assert (await row_of(svc, row.id)).status == "queued"
    second = await svc.dbq.claim()
    assert second is not None and second.attempt == 2
    assert not await svc.dbq.renew(first)  # the old try lost its lease
    ok = JudgeResult(Verdict.ACCEPTED, stdout=b"1\n")
    assert await svc.store(row, ok, attempt=first.attempt) is None  # fenced off
    assert (await row_of(svc, row.id)).status == "running"
    stored = await svc.store(row, ok, attempt=second.attempt)
    assert stored is not None and stored.status == "finished" and stored.attempt == 2
    assert await svc.store(row, ok, attempt=second.attempt) is None  # never twice


async def test_the_claim_returns_the_row_the_database_holds(
    service: tuple[ExecutionService, int],
) -> None:
    """The claim returns the whole row (the worker does not load it again): it must equal a
    read of the row afterwards, column for column, with JSON, bytes and UUIDs decoded."""
    svc, user_id = service
    assert svc.dbq is not None
    req = JobRequest(
        language="python",
        source="print(input())",
        stdin="héllo\n",
        expected_output="héllo\n",
        limits={"wall_s": 3.0},
    )
    [row] = await svc.submit(user_id, [req])
    claim = await svc.dbq.claim()
    assert claim is not None and claim.row is not None and claim.id == row.id
    stored = await row_of(svc, row.id)
    for attr in inspect(Execution).column_attrs:
        assert getattr(claim.row, attr.key) == getattr(stored, attr.key), attr.key
    assert claim.row.status == "running" and claim.row.attempt == 1
    assert claim.row.stdin == "héllo\n".encode() and claim.row.source["files"]
    await svc.dbq.release(claim)


async def test_a_workers_result_is_one_fenced_statement_with_its_notify(
    service: tuple[ExecutionService, int],
) -> None:
    """A worker stores its result from the claimed row (no ORM session, no read back): the row
    it returns equals a read of the database column for column; ``cc_done`` is notified once,
    for it; a try whose lease was lost writes nothing and notifies nothing."""
    svc, user_id = service
    assert svc.dbq is not None
    listener = await asyncpg.connect(svc.db.engine.url.set(drivername="postgresql")
                                     .render_as_string(hide_password=False))  # fmt: skip
    heard: list[str] = []
    await listener.add_listener(DONE_CHANNEL, lambda *a: heard.append(a[-1]))
    try:
        [row] = await svc.submit(user_id, [JobRequest(language="python", source="print(1)")])
        first = await svc.dbq.claim()
        assert first is not None and first.row is not None
        await expire(svc, row.id)
        assert await svc.dbq.reap() == 1
        second = await svc.dbq.claim()
        assert second is not None and second.row is not None and second.attempt == 2
        ok = JudgeResult(Verdict.ACCEPTED, stdout=b"1\n", cpu_ms=3.5, memory_kb=1024)
        lost = await svc.store(first.row, ok, attempt=first.attempt, current=True)
        assert lost is None
        assert (await row_of(svc, row.id)).status == "running"
        stored = await svc.store(second.row, ok, attempt=second.attempt, current=True)
        assert stored is not None and stored.status == "finished" and stored.attempt == 2
        in_db = await row_of(svc, row.id)
        for attr in inspect(Execution).column_attrs:
            assert getattr(stored, attr.key) == getattr(in_db, attr.key), attr.key
        assert in_db.worker is None and in_db.lease_until is None and in_db.stdout == b"1\n"
        again = await svc.store(second.row, ok, attempt=second.attempt, current=True)
        assert again is None  # never twice
        await asyncio.sleep(0.3)
        assert heard == [str(row.id)], heard
    finally:
        await listener.close()


async def test_a_job_out_of_tries_is_finished_as_internal_error(
    service: tuple[ExecutionService, int],
) -> None:
    svc, user_id = service
    assert svc.dbq is not None
    [row] = await svc.submit(user_id, [JobRequest(language="python", source="print(1)")])
    for _ in range(svc.settings.exec_max_attempts):
        claim = await svc.dbq.claim()
        assert claim is not None
        await expire(svc, row.id)
        await svc.dbq.reap()
    done = await row_of(svc, row.id)
    assert done.status == "finished" and done.verdict == Verdict.INTERNAL_ERROR.value
    assert "lost 3 times" in (done.message or "")


async def test_claims_share_fairly_between_users(service: tuple[ExecutionService, int]) -> None:
    svc, alice = service
    assert svc.dbq is not None
    async with svc.db.session() as s:
        user = User(username=f"b{secrets.token_hex(4)}", email="b@example.com", password_hash="x")
        s.add(user)
        await s.commit()
        bob = user.id
    job = JobRequest(language="python", source="print(1)")
    alices = await svc.submit(alice, [job] * 5)
    [bobs] = await svc.submit(bob, [job])
    claims = [await svc.dbq.claim() for _ in range(3)]
    ids = [c.id for c in claims if c is not None]
    # Alice's first, then Bob's (no running job) before Alice's second.
    assert ids == [alices[0].id, bobs.id, alices[1].id]


async def test_internal_errors_are_retried_and_other_verdicts_are_not(
    pg_env: Env, service: tuple[ExecutionService, int]
) -> None:
    """An embedded worker whose sandbox runtime fails: the job is tried exec_max_attempts
    times, then finished as internal_error (a wrong answer would be final at once)."""
    svc, user_id = service
    broken = Judge(None, svc.languages, svc.settings)  # no runtime: every job internal_error
    worker_svc = ExecutionService(svc.db, svc.settings, svc.languages, broken, svc.limiter)
    await worker_svc.start_worker(embedded=True)
    try:
        [row] = await svc.submit(user_id, [JobRequest(language="python", source="print(1)")])
        done = await wait_for(svc, row.id, "finished", 30)
    finally:
        await worker_svc.stop()
    assert done.verdict == Verdict.INTERNAL_ERROR.value
    assert done.attempt == svc.settings.exec_max_attempts


@pytest.mark.sandbox
async def test_an_embedded_worker_serves_the_server_alone(
    pg_env: Env, service: tuple[ExecutionService, int]
) -> None:
    svc, user_id = service
    runtime = make_runtime(pg_env.settings)
    judge = Judge(runtime, svc.languages, svc.settings)
    settings = svc.settings.model_copy(update={"exec_embedded_worker": True})
    server = ExecutionService(svc.db, settings, svc.languages, judge, svc.limiter)
    await server.start()
    try:
        [row] = await server.submit(user_id, [JobRequest(language="python", source="print(6*7)")])
        done = await server.wait(row, 60)
    finally:
        await server.stop()
        await runtime.shutdown()
    assert done.status == "finished" and done.stdout == b"42\n"


def test_sqlite_refuses_the_database_queue(tmp_path: Path) -> None:
    db = make_database("sqlite", tmp_path)
    settings = make_settings(tmp_path, db.url, exec_queue="database")
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        DbQueue(Database(settings), settings, "w")


def test_a_worker_process_refuses_the_memory_queue(tmp_path: Path) -> None:
    env = {**os.environ, "COOLCODING_DATA_DIR": str(tmp_path), "COOLCODING_EXEC_QUEUE": "memory"}
    r = subprocess.run([*CLI, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "COOLCODING_EXEC_QUEUE=database" in r.stderr
