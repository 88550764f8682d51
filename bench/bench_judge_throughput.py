"""The judge at scale (issue 10): jobs/s of hello-world jobs from 20 concurrent clients over HTTP
(``?wait=true``) against the unsandboxed floor (the same program run 20 at a time with
subprocess), in interleaved rounds of one run; the Judge0-compatible endpoint against the native
one; and the server process's own CPU per judged job (its utime + stime, children excluded).

The load generator is a raw-asyncio HTTP/1.1 closed loop (``httpload.run_closed``: ``--clients``
keep-alive connections, each sends its next request when the previous answer arrived, every
answer checked: status and verdict accepted / Judge0 status 3); ``--client httpx`` is the former
httpx client, ~3 ms of CPU per job on the same 2 cores. The bench process's own CPU per job is
recorded for every scenario, the floor's launcher (asyncio subprocess) included.

Python hello, and C precompiled (the compile cache: every measured job runs the cached binary).

Usage: .venv/bin/python bench/bench_judge_throughput.py [-n 200] [--rounds 3] [--clients 20]
[--client raw|httpx] [--baseline DIR [--baseline-env KEY=VALUE]] [--only python]
[--db sqlite|postgres] (root; sandboxes need cgroups and uids). Writes
bench/results/judge_throughput.json. ``--only python``: the native Python scenario (and the
baseline's) alone; ``--db postgres``: each server on a new database of the local PostgreSQL
(COOLCODING_BENCH_PG_ADMIN_URL, default postgres@127.0.0.1:5432), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_exec import pct
from ccserver import Server
from httpload import run_closed

PY = 'print("hello")\n'
C = '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n'
RESULTS = Path(__file__).parent / "results" / "judge_throughput.json"
TICK = os.sysconf("SC_CLK_TCK")


def ok(r: httpx.Response) -> bool:
    return r.status_code == 200 and r.json()["verdict"] == "accepted"


def ok0(r: httpx.Response) -> bool:
    return r.status_code == 201 and r.json()["status"]["id"] == 3


# The same checks on the raw client's (status, body), without an httpx.Response per answer.
RAW_CHECKS: dict[Any, Any] = {
    ok: lambda status, raw: status == 200 and json.loads(raw)["verdict"] == "accepted",
    ok0: lambda status, raw: status == 201 and json.loads(raw)["status"]["id"] == 3,
}


def cpu_s(pid: int, stat: str = "stat") -> float:
    fields = Path(f"/proc/{pid}/{stat}").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def loop_cpu_s(pid: int) -> float:
    """CPU of the server's main thread alone: its event loop (HTTP, validation, the services'
    Python), without the threads (SQLite, the sandboxes' thread pool) where other work lands."""
    return cpu_s(pid, f"task/{pid}/stat")


def helper_cpu_s(server_pid: int) -> float:
    """CPU of the server's spawner helpers (sandbox/local/spawner.py): spawning on its behalf."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server_pid and b"spawner_helper" in cmd:
            total += cpu_s(int(d.name))
    return total


async def load(url: str, body: dict[str, Any], headers: dict[str, str], n: int, clients: int,
               check: Any) -> tuple[float, list[float]]:  # fmt: skip
    lat: list[float] = []
    sem = asyncio.Semaphore(clients)
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(headers=headers, timeout=300, limits=limits) as c:

        async def one() -> None:
            async with sem:
                t = time.perf_counter()
                r = await c.post(url, json=body)
                assert check(r), r.text
                lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - t0), lat


async def load_raw(url: str, body: dict[str, Any], headers: dict[str, str], n: int,
                   clients: int, check: Any) -> tuple[float, list[float]]:  # fmt: skip
    """``load`` on ``httpload.run_closed``: the same requests and checks, a lighter client."""
    parsed = httpx.URL(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parsed.raw_path.decode()} HTTP/1.1",
        f"Host: {parsed.host}:{parsed.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload

    assert parsed.port is not None
    return await run_closed(
        parsed.host, parsed.port, request, n=n, connections=clients, check=RAW_CHECKS[check]
    )


async def floor(argv: list[str], n: int, clients: int) -> tuple[float, list[float]]:
    lat: list[float] = []
    sem = asyncio.Semaphore(clients)

    async def one() -> None:
        async with sem:
            t = time.perf_counter()
            p = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL)
            assert await p.wait() == 0
            lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0), lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", type=int, default=0, help="COOLCODING_EXEC_WORKERS (0: default)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout (with its .venv): its server judged as a peer")  # fmt: skip
    ap.add_argument("--baseline-env", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for the baseline's server only (COOLCODING_KEY), e.g. "
                    "--baseline . --baseline-env SANDBOX_JUDGE_REUSE=false")  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="the load generator: raw asyncio closed loop, or httpx (the former)")  # fmt: skip
    ap.add_argument("--only", choices=("all", "python"), default="all",
                    help="python: only the native Python scenario (and the baseline's)")  # fmt: skip
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = ap.parse_args()
    dbs = [new_pg_database() for _ in range(2)] if args.db == "postgres" else []
    try:
        run(args, dbs)
    finally:
        for name in dbs:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


PG_ADMIN = os.environ.get(
    "COOLCODING_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pg_admin(sql: str) -> None:
    import asyncpg  # the server's own dependency

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def new_pg_database() -> str:
    name = f"cc_bench_{os.getpid()}_{os.urandom(4).hex()}"
    pg_admin(f'CREATE DATABASE "{name}"')
    return name


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name


def run(args: argparse.Namespace, dbs: list[str]) -> None:
    load_fn = load_raw if args.client == "raw" else load
    base_env = dict(kv.split("=", 1) for kv in args.baseline_env)
    load_start = round(os.getloadavg()[0], 2)
    work = Path(tempfile.mkdtemp(prefix="cc-bench-tp-"))
    binary = work / "hello"
    subprocess.run(["gcc", "-O2", "-x", "c", "-o", str(binary), "-"], input=C.encode(), check=True)
    extra = {"EXEC_WORKERS": str(args.workers)} if args.workers else {}
    ours_db = {"DATABASE_URL": pg_url(dbs[0])} if dbs else {}
    base_db = {"DATABASE_URL": pg_url(dbs[1])} if dbs else {}
    srv = Server(EXEC_RATE_LIMIT_PER_MINUTE="1000000", JUDGE0_ENABLED="true", **extra, **ours_db)
    base = None
    if args.baseline is not None:
        try:
            base = Server(
                args.baseline.resolve(), EXEC_RATE_LIMIT_PER_MINUTE="1000000", **extra,
                **base_db, **base_env,
            )  # fmt: skip
        except BaseException:  # e.g. the baseline's .venv lacks a dependency: stop ours too
            srv.stop()
            shutil.rmtree(srv.tmp, ignore_errors=True)
            raise
    series: dict[str, list[float]] = {}
    lats: dict[str, list[float]] = {}
    cpu_per_job: list[float] = []
    helper_per_job: list[float] = []
    baseline_cpu: list[float] = []
    cpu_by: dict[str, list[float]] = {}
    loop_by: dict[str, list[float]] = {}  # the server's main thread only
    bench_cpu: dict[str, list[float]] = {}  # this process's CPU per job (client or launcher)
    floor_children_cpu: dict[str, list[float]] = {}  # the floor's programs themselves
    try:
        cookie = srv.headers
        token = srv.client.post("/api/tokens", json={"name": "bench"}, headers=cookie).json()
        j0 = {"X-Auth-Token": token["token"]}
        native = f"{srv.base}/api/executions?wait=true"
        judge0 = f"{srv.base}/judge0/submissions?wait=true"

        scenarios: list[tuple[str, Any]] = [
            ("floor python3", lambda: floor(["/usr/bin/python3", "-c", PY], args.n, args.clients)),
            ("judge python", lambda: load_fn(native, {"language": "python", "source": PY}, cookie,
                                          args.n, args.clients, ok)),
            ("floor C binary", lambda: floor([str(binary)], args.n, args.clients)),
            ("judge C cached", lambda: load_fn(native, {"language": "c", "source": C}, cookie,
                                            args.n, args.clients, ok)),
            ("judge0 python", lambda: load_fn(judge0, {"source_code": PY, "language_id": 71}, j0,
                                           args.n, args.clients, ok0)),
        ]  # fmt: skip
        if args.only == "python":
            scenarios = [sc for sc in scenarios if sc[0] == "judge python"]
        if base is not None:
            scenarios.append(("baseline judge python", lambda: load_fn(
                f"{base.base}/api/executions?wait=true", {"language": "python", "source": PY},
                base.headers, args.n, args.clients, ok)))  # fmt: skip
        # Warm-up: the C build is cached, the pools full, the DB's pages read.
        for _, run in scenarios:
            asyncio.run(run())
        for r in range(args.rounds):
            # Every other round in reverse: no scenario always runs last (after the machine
            # has warmed up, or while the previous one's clean-up still runs).
            for name, run in scenarios if r % 2 == 0 else scenarios[::-1]:
                own_before = time.process_time()
                children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                if name.startswith("baseline") and base is not None:
                    before = cpu_s(base.proc.pid)
                    loop_before = loop_cpu_s(base.proc.pid)
                    rate, lat = asyncio.run(run())
                    baseline_cpu.append((cpu_s(base.proc.pid) - before) * 1000 / args.n)
                    loop_by.setdefault(name, []).append(
                        (loop_cpu_s(base.proc.pid) - loop_before) * 1000 / args.n
                    )
                    own = (time.process_time() - own_before) * 1000 / args.n
                    bench_cpu.setdefault(name, []).append(own)
                    series.setdefault(name, []).append(rate)
                    lats.setdefault(name, []).extend(lat)
                    continue
                before = cpu_s(srv.proc.pid)
                loop_before = loop_cpu_s(srv.proc.pid)
                helper_before = helper_cpu_s(srv.proc.pid)
                rate, lat = asyncio.run(run())
                bench_cpu.setdefault(name, []).append(
                    (time.process_time() - own_before) * 1000 / args.n
                )
                if name.startswith("floor"):
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    used = (after.ru_utime + after.ru_stime) - (
                        children_before.ru_utime + children_before.ru_stime
                    )
                    floor_children_cpu.setdefault(name, []).append(used * 1000 / args.n)
                if name.startswith("judge"):
                    cpu_per_job.append((cpu_s(srv.proc.pid) - before) * 1000 / args.n)
                    cpu_by.setdefault(name, []).append(cpu_per_job[-1])
                    loop_by.setdefault(name, []).append(
                        (loop_cpu_s(srv.proc.pid) - loop_before) * 1000 / args.n
                    )
                    helper = helper_cpu_s(srv.proc.pid) - helper_before
                    helper_per_job.append(helper * 1000 / args.n)
                series.setdefault(name, []).append(rate)
                lats.setdefault(name, []).extend(lat)
    finally:
        srv.stop()
        shutil.rmtree(srv.tmp, ignore_errors=True)
        if base is not None:
            base.stop()
            shutil.rmtree(base.tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in series.items()}
    result = {
        "n": args.n,
        "rounds": args.rounds,
        "clients": args.clients,
        "cpus": os.cpu_count(),
        "workers": args.workers or "default",
        "jobs_per_s": {k: [round(x, 2) for x in v] for k, v in series.items()},
        "median_jobs_per_s": {k: round(v, 2) for k, v in med.items()},
        "p50_ms": {k: round(pct(v, 50), 1) for k, v in lats.items()},
        "p99_ms": {k: round(pct(v, 99), 1) for k, v in lats.items()},
        **(
            {
                "ratio_python_vs_floor": round(med["judge python"] / med["floor python3"], 3),
                "ratio_c_vs_floor": round(med["judge C cached"] / med["floor C binary"], 3),
                "ratio_judge0_vs_native": round(med["judge0 python"] / med["judge python"], 3),
            }
            if args.only == "all"
            else {}
        ),
        "db": args.db,
        "server_cpu_ms_per_job_p99_by_scenario": {
            k: round(pct(v, 99), 2) for k, v in cpu_by.items()
        },
        "server_cpu_ms_per_job_median": round(statistics.median(cpu_per_job), 2),
        "server_cpu_ms_per_job_p99": round(pct(cpu_per_job, 99), 2),
        "server_cpu_ms_per_job_by_scenario": {
            k: round(statistics.median(v), 2) for k, v in cpu_by.items()
        },
        "server_cpu_ms_per_job_rounds": {
            **{k: [round(x, 2) for x in v] for k, v in cpu_by.items()},
            **(
                {"baseline judge python": [round(x, 2) for x in baseline_cpu]}
                if baseline_cpu
                else {}
            ),
        },
        "server_main_thread_cpu_ms_per_job_by_scenario": {
            k: round(statistics.median(v), 2) for k, v in loop_by.items()
        },
        "server_main_thread_cpu_ms_per_job_rounds": {
            k: [round(x, 2) for x in v] for k, v in loop_by.items()
        },
        **(
            {
                "ratio_python_main_thread_cpu_vs_baseline_paired_median": round(
                    statistics.median(
                        a / b
                        for a, b in zip(
                            loop_by["judge python"], loop_by["baseline judge python"], strict=True
                        )
                    ),
                    3,
                )
            }
            if "baseline judge python" in loop_by
            else {}
        ),
        "client": args.client,
        # This process's CPU per job: the load generator's (judge) or the launcher's (floor).
        "bench_cpu_ms_per_job_by_scenario": {
            k: round(statistics.median(v), 2) for k, v in bench_cpu.items()
        },
        "floor_programs_cpu_ms_per_job": {
            k: round(statistics.median(v), 2) for k, v in floor_children_cpu.items()
        },
        "spawner_helper_cpu_ms_per_job_median": round(statistics.median(helper_per_job), 2),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "load_avg_1m_at_start": load_start,
        **(
            {
                "baseline": str(args.baseline),
                "baseline_env": base_env,
                "baseline_server_cpu_ms_per_job_median": round(statistics.median(baseline_cpu), 2),
                "baseline_server_cpu_ms_per_job_p99": round(pct(baseline_cpu, 99), 2),
                # Same-round pairs (the peer runs right after ours, or first, every other round).
                "ratio_python_cpu_vs_baseline_paired_median": round(
                    statistics.median(
                        a / b for a, b in zip(cpu_by["judge python"], baseline_cpu, strict=True)
                    ),
                    3,
                ),
                "ratio_server_cpu_vs_baseline": round(
                    statistics.median(cpu_per_job) / statistics.median(baseline_cpu), 3
                ),
                "ratio_python_vs_baseline": round(
                    med["judge python"] / med["baseline judge python"], 3
                ),
            }
            if baseline_cpu
            else {}
        ),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
