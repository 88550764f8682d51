"""py-spy profile of ``coolcoding serve`` judging ``?wait=true`` Python hello jobs from 20
clients (issue 10), and a report of where its busy samples go.

Usage (root, py-spy in the venv):
    .venv/bin/python bench/profile_judge_wait.py OUT.raw [KEY=VALUE ...]   # COOLCODING_KEY
    .venv/bin/python bench/profile_judge_wait.py --report OUT.raw
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_judge_throughput import PY, load
from ccserver import ROOT, Server

# Leaves that are waits, not work (py-spy's idle detection misses them with --nonblocking).
IDLE = ("asyncio/runners.py:118)", "concurrent/futures/thread.py:81)", "aiosqlite/core.py:59)")
BUCKETS = [
    ("aiosqlite's thread running SQLite", "_connection_worker_thread"),
    ("thread pool: wipe of the reused sandbox", "_wipe_ephemeral.<locals>.wipe"),
    ("thread pool: cgroup removal", "Cgroup.remove"),
    ("thread pool: other", "_worker (concurrent"),
    ("submit (validation + INSERT)", "ExecutionService.submit"),
    ("the judge on the event loop (run_job)", "ExecutionService.run_job"),
    ("_run_folded: the finishing UPDATE (this step)", "ExecutionService._run_folded"),
    ("_process: claim + store (previous path)", "ExecutionService._process"),
    ("HTTP stack", "RequestResponseCycle"),
    ("HTTP write", "CoalescingTransport"),
    ("SQLAlchemy, caller lost (greenlet)", "sqlalchemy"),
]


def record(out: str, env: dict[str, str], seconds: int = 25) -> None:
    srv = Server(EXEC_RATE_LIMIT_PER_MINUTE="1000000", **env)
    url = f"{srv.base}/api/executions?wait=true"
    body = {"language": "python", "source": PY}

    def ok(r: httpx.Response) -> bool:
        return r.status_code == 200

    try:
        asyncio.run(load(url, body, srv.headers, 60, 20, ok))  # warm-up
        spy = subprocess.Popen(
            [str(ROOT / ".venv/bin/py-spy"), "record", "-r", "250", "-d", str(seconds),
             "--nonblocking", "-f", "raw", "-o", out, "--pid", str(srv.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)
        while spy.poll() is None:
            asyncio.run(load(url, body, srv.headers, 40, 20, ok))
    finally:
        srv.stop()
        shutil.rmtree(srv.tmp, ignore_errors=True)


def report(path: str) -> None:
    shares: collections.Counter[str] = collections.Counter()
    for line in Path(path).read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        if stack.endswith(IDLE):
            continue
        name = next((n for n, p in BUCKETS if p in stack), None)
        shares[name or "other: " + stack.split(";")[-1].split(" (")[0]] += int(count)
    busy = sum(shares.values())
    print(f"{busy} busy samples")
    for name, n in shares.most_common(25):
        print(f"{n / busy * 100:5.1f} %  {name}")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        record(sys.argv[1], dict(kv.split("=", 1) for kv in sys.argv[2:]))
        report(sys.argv[1])
