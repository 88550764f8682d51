"""Judge workers as processes (issue 10): jobs/s of 2 ``coolcoding worker`` processes vs 1, on
the PostgreSQL queue, interleaved rounds in one run. Each worker process runs one job at a time
(``--slots 1``); a round submits ``-n`` Python hello jobs in one batch once the workers are
ready and times until the last is finished. ``--loop N`` makes each job CPU-bound (a loop of N
iterations in the program, the floor's too), ``--sleep-ms N`` makes it wait N ms (a job that
waits on I/O: what a worker's throughput is when its cores are not the limit, i.e. whether the
queue itself scales); ``machine_busy_*``: the machine's busy share
during each round (/proc/stat).

Usage: .venv/bin/python bench/bench_judge_workers.py [-n 60] [--rounds 3]   (root; PostgreSQL up)
Writes bench/results/judge_workers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import Execution, User
from coolcoding.execution.judge import Judge
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.services.executions import ExecutionService, JobRequest
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.settings import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLI = [sys.executable, "-c", "from coolcoding.cli import main; main()"]
RESULTS = Path(__file__).parent / "results" / "judge_workers.json"


def start_workers(
    count: int, env: dict[str, str], python: str = sys.executable
) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [python, *CLI[1:], "worker", "--slots", "1"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(count)
    ]
    for p in procs:
        assert p.stdout is not None
        while "ready" not in (line := p.stdout.readline()):
            if not line:
                raise RuntimeError("a worker did not start")
        # Its log goes on to the pipe: drain it, or a full pipe would block the worker.
        threading.Thread(target=p.stdout.read, daemon=True).start()
    return procs


def workers_cpu_s(workers: list[subprocess.Popen[str]]) -> float:
    """CPU seconds of the worker processes and their spawner helpers (their direct children),
    not of the jobs' sandboxes (bwrap, the zygote, the program)."""
    pids = {w.pid for w in workers}
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(entry) in pids or (
            int(fields[1]) in pids
            and "spawner_helper" in Path(f"/proc/{entry}/cmdline").read_text()
        ):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (/proc/stat): how loaded the run was."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


async def floor_round(n: int, parallel: int, program: str) -> float:
    """The unsandboxed peer: ``n`` ``python3`` hellos, ``parallel`` at a time: how much this
    machine, as loaded as it is now, gains from a second process."""
    sem = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with sem:
            p = await asyncio.create_subprocess_exec("/usr/bin/python3", "-c", program,
                                                     stdout=subprocess.DEVNULL)  # fmt: skip
            await p.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def round_(
    svc: ExecutionService,
    user_id: int,
    n: int,
    procs: int,
    env: dict[str, str],
    program: str,
    python: str = sys.executable,
    cpu: list[float] | None = None,
) -> float:
    """Jobs/s of ``procs`` workers; ``cpu`` gets their CPU per job in ms."""
    workers = start_workers(procs, env, python)
    # The workers' ``NOTIFY cc_done`` (payload: the id) says when a job is stored: the round
    # ends on the n-th of its ids, checked by one count. Polling alone (a count every 20 ms
    # through SQLAlchemy) cost this process ~3 ms of CPU per job, taken from the workers' cores.
    listen = await asyncpg.connect(env["COOLCODING_DATABASE_URL"].replace("+asyncpg", ""))
    finished: set[int] = set()
    enough = asyncio.Event()
    ids = [0, -1]  # the round's id range, once submitted
    at: list[float] = []  # when the n-th notification came

    def on_done(_c: object, _pid: int, _channel: str, payload: str) -> None:
        finished.add(int(payload))
        if not enough.is_set() and sum(ids[0] <= i <= ids[1] for i in finished) >= n:
            at.append(time.perf_counter())
            enough.set()

    await listen.add_listener("cc_done", on_done)
    try:
        job = JobRequest(language="python", source=program)
        cpu0 = workers_cpu_s(workers)
        t0 = time.perf_counter()
        rows = await svc.submit(user_id, [job] * n)
        lo, hi = ids[:] = min(r.id for r in rows), max(r.id for r in rows)
        on_done(None, 0, "", str(lo - 1))  # count what arrived before the ids were known
        while True:
            # A slow fallback (a build whose workers do not notify, a retried job): a range
            # on the (status, id) index, cheap for PostgreSQL, which shares the cores.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), 0.25)
            async with svc.db.session() as s:
                done = await s.scalar(
                    select(func.count()).where(
                        Execution.status == "finished", Execution.id.between(lo, hi)
                    )
                )
            if done == n:
                break
            enough.clear()
            at.clear()
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("a worker died")
        if cpu is not None:
            cpu.append((workers_cpu_s(workers) - cpu0) * 1000 / n)
        # The moment the n-th result was stored (its notification), not the check's.
        return n / ((at[0] if at else time.perf_counter()) - t0)
    finally:
        await listen.close()
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(60)


@contextlib.asynccontextmanager
async def queue_platform() -> AsyncIterator[tuple[ExecutionService, int, dict[str, str]]]:
    """A new PostgreSQL database with the queue's schema and one user, an execution service on
    it that submits jobs (no worker of its own), and the environment of ``coolcoding worker``
    processes for it; all dropped at the end."""
    name = f"cc_bench_workers_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    data_dir = Path(tempfile.mkdtemp(prefix="cc-bench-workers-"))
    data_dir.chmod(0o711)
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    cgroup = f"cc-bench-workers-{os.getpid()}"
    settings = Settings(environment="test", data_dir=data_dir, database_url=url,
                        exec_queue="database", exec_embedded_worker=False,
                        exec_rate_limit_per_minute=1_000_000, sandbox_cgroup_parent=cgroup)  # fmt: skip
    env = {**os.environ, "COOLCODING_DATA_DIR": str(data_dir), "COOLCODING_DATABASE_URL": url,
           "COOLCODING_EXEC_QUEUE": "database", "COOLCODING_SANDBOX_CGROUP_PARENT": cgroup,
           "COOLCODING_ENVIRONMENT": "test"}  # fmt: skip
    db = Database(settings)
    try:
        await upgrade(db.engine)
        async with db.session() as s:
            user = User(username="bench", email="b@example.com", password_hash="x")
            s.add(user)
            await s.commit()
            user_id = user.id
        judge = Judge(None, LanguageRegistry(), settings)
        svc = ExecutionService(db, settings, judge.languages, judge, RateLimiter(10**9, 60))
        await svc.start()
        yield svc, user_id, env
        await svc.stop()
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(data_dir, ignore_errors=True)


async def main_async(n: int, rounds: int, program: str, baseline: str) -> dict[str, Any]:
    async with queue_platform() as (svc, user_id, env):
        one: list[float] = []
        two: list[float] = []
        floor1: list[float] = []
        floor2: list[float] = []
        others: list[float] = []
        busy: dict[int, list[float]] = {1: [], 2: []}
        bench_cpu: list[float] = []  # this process's CPU per job in a round (it shares the cores)
        wcpu: dict[int, list[float]] = {1: [], 2: []}  # the workers' own CPU per job
        bcpu: dict[int, list[float]] = {1: [], 2: []}  # the same, the baseline's
        base1: list[float] = []
        base2: list[float] = []
        await round_(svc, user_id, 10, 1, env, program)  # warm-up: caches, the DB's pages
        for i in range(rounds):
            load0 = os.getloadavg()[0]
            order = [1, 2] if i % 2 == 0 else [2, 1]  # neither always first
            for procs in order:
                b0, t0 = cpu_busy()
                c0 = os.times()
                rate = await round_(svc, user_id, n, procs, env, program, cpu=wcpu[procs])
                c1 = os.times()
                b1, t1 = cpu_busy()
                bench_cpu.append((c1.user + c1.system - c0.user - c0.system) * 1000 / n)
                busy[procs].append((b1 - b0) / max(1, t1 - t0))
                (one if procs == 1 else two).append(rate)
            if baseline:  # the other checkout's workers, same rounds (its own .venv)
                py = str(Path(baseline) / ".venv" / "bin" / "python")
                for procs in order:
                    rate = await round_(svc, user_id, n, procs, env, program, py, bcpu[procs])
                    (base1 if procs == 1 else base2).append(rate)
            for procs in order:
                (floor1 if procs == 1 else floor2).append(await floor_round(n, procs, program))
            others.append(load0)
    m1, m2 = statistics.median(one), statistics.median(two)
    f1, f2 = statistics.median(floor1), statistics.median(floor2)
    return {
        "floor_one_python3_per_s": [round(x, 2) for x in floor1],
        "floor_two_python3_per_s": [round(x, 2) for x in floor2],
        "floor_ratio_two_vs_one": round(f2 / f1, 2),
        "ratio_two_vs_one_over_floor_ratio": round((m2 / m1) / (f2 / f1), 2),
        "load_avg_1m_per_round": [round(x, 2) for x in others],
        "n": n,
        "rounds": rounds,
        "one_worker_jobs_per_s": [round(x, 2) for x in one],
        "two_workers_jobs_per_s": [round(x, 2) for x in two],
        "median_one": round(m1, 2),
        "median_two": round(m2, 2),
        "ratio_two_vs_one": round(m2 / m1, 2),
        "cpus": os.cpu_count(),
        "machine_busy_one_worker": [round(x, 3) for x in busy[1]],
        "machine_busy_two_workers": [round(x, 3) for x in busy[2]],
        "bench_cpu_ms_per_job": round(statistics.median(bench_cpu), 2),
        "worker_cpu_ms_per_job_one": [round(x, 2) for x in wcpu[1]],
        "worker_cpu_ms_per_job_two": [round(x, 2) for x in wcpu[2]],
        "program": program,
        **(
            {
                "baseline": baseline,
                "baseline_one_worker_jobs_per_s": [round(x, 2) for x in base1],
                "baseline_two_workers_jobs_per_s": [round(x, 2) for x in base2],
                "ratio_one_vs_baseline": round(m1 / statistics.median(base1), 3),
                "ratio_two_vs_baseline": round(m2 / statistics.median(base2), 3),
                "baseline_worker_cpu_ms_per_job_one": [round(x, 2) for x in bcpu[1]],
                "baseline_worker_cpu_ms_per_job_two": [round(x, 2) for x in bcpu[2]],
                "ratio_worker_cpu_vs_baseline_paired_median": round(
                    statistics.median(
                        a / b for a, b in zip(wcpu[1] + wcpu[2], bcpu[1] + bcpu[2], strict=True)
                    ),
                    3,
                ),
                "baseline_ratio_two_vs_one": round(
                    statistics.median(base2) / statistics.median(base1), 2
                ),
            }
            if baseline
            else {}
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    ap.add_argument("--loop", type=int, default=0,
                    help="the program adds a loop of this many iterations (CPU-bound jobs: "
                    "~1 ms per 20,000 here) to its hello")  # fmt: skip
    ap.add_argument("--baseline", default="", help="another checkout (with its .venv): its "
                    "workers run the same rounds, interleaved")  # fmt: skip
    ap.add_argument("--sleep-ms", type=int, default=0,
                    help="the program sleeps this long before its hello (jobs that wait on I/O: "
                    "the queue's scaling with the cores not the limit)")  # fmt: skip
    args = ap.parse_args()
    program = 'print("hello")\n'
    if args.sleep_ms:
        program = f"import time\ntime.sleep({args.sleep_ms / 1000})\nprint('hello')\n"
    if args.loop:
        program = f"n = 0\nfor i in range({args.loop}):\n    n += i\nprint('hello', n)\n"
    result = asyncio.run(main_async(args.n, args.rounds, program, args.baseline))
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
