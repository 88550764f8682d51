"""Judge fair share (issue 12, finding 8): how long a user's quick job waits behind another
user's batch, fair share vs the old single FIFO, in the same run, interleaved.

Real judge jobs in real sandboxes through the real ``JobQueue`` (no HTTP, no DB). Each round:
user A submits a batch of ``--batch`` ``sleep --sleep`` jobs, ``--delay`` later (A's jobs hold
every worker) user B one ``echo`` job; we
measure B's latency (submit -> done) and A's batch makespan. The peer is the same queue with
every job in one sub-queue (owner 0): exactly the old FIFO. Floor: B's job on an idle queue.

Usage: .venv/bin/python bench/bench_judge_fairness.py [--rounds 5] [--batch 10] [--sleep 1]
[--delay 0.3]
(root: sandboxes need cgroups and uids). Writes bench/results/judge_fairness.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchstats import pct
from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.execution.queue import JobQueue
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.settings import Settings

RESULTS = Path(__file__).parent / "results" / "judge_fairness.json"
A, B = 1, 2


async def run(rounds: int, batch: int, sleep_s: float, delay_s: float) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="cc-bench-fair-", dir="/tmp"))
    os.chmod(base, 0o711)
    settings = Settings(
        environment="test", data_dir=base, sandbox_cgroup_parent=f"cc-bench-fair-{os.getpid()}"
    )
    runtime = LocalRuntime(settings)
    judge = Judge(runtime, LanguageRegistry(), settings)
    limits = resolve_limits(None, settings)
    jobs = {
        "slow": JudgeJob("bash", {"main.sh": f"sleep {sleep_s}\n".encode()}, "main.sh", limits),
        "quick": JudgeJob("bash", {"main.sh": b"echo hi\n"}, "main.sh", limits),
    }
    kinds: dict[int, str] = {}
    done: dict[int, float] = {}
    events: dict[int, asyncio.Event] = {}

    async def handler(job_id: int) -> None:
        result = await judge.judge(jobs[kinds[job_id]])
        assert result.verdict.value == "accepted", result
        done[job_id] = time.perf_counter()
        events[job_id].set()

    queue = JobQueue(handler, workers=settings.exec_workers, max_size=10_000)
    queue.start()
    next_id = iter(range(1, 1_000_000))

    def submit(kind: str, n: int, owner: int) -> list[int]:
        ids = [next(next_id) for _ in range(n)]
        for i in ids:
            kinds[i], events[i] = kind, asyncio.Event()
        queue.submit(ids, owner=owner)
        return ids

    async def one_round(fair: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        batch_ids = submit("slow", batch, A)
        await asyncio.sleep(delay_s)  # B comes while A's jobs hold every worker
        t_b = time.perf_counter()
        (quick,) = submit("quick", 1, B if fair else A)  # one owner = the old single FIFO
        await asyncio.gather(*(events[i].wait() for i in [*batch_ids, quick]))
        return (done[quick] - t_b) * 1000, (max(done[i] for i in batch_ids) - t0) * 1000

    out: dict[str, Any] = {
        "workers": queue.workers,
        "batch": batch,
        "sleep_s": sleep_s,
        "b_arrives_after_s": delay_s,
    }
    try:
        floor: list[float] = []
        for _ in range(rounds * 2):
            t = time.perf_counter()
            (q,) = submit("quick", 1, B)
            await events[q].wait()
            floor.append((time.perf_counter() - t) * 1000)
        lat: dict[str, list[float]] = {"fair": [], "fifo": []}
        span: dict[str, list[float]] = {"fair": [], "fifo": []}
        for _ in range(rounds):
            for name in ("fair", "fifo"):  # interleaved
                b_ms, a_ms = await one_round(name == "fair")
                lat[name].append(b_ms)
                span[name].append(a_ms)
        out["floor_quick_job_ms"] = {
            "p50": round(pct(floor, 50), 1),
            "p99": round(pct(floor, 99), 1),
        }
        for name in ("fair", "fifo"):
            out[name] = {
                "b_latency_p50_ms": round(pct(lat[name], 50), 1),
                "b_latency_p99_ms": round(pct(lat[name], 99), 1),
                "a_makespan_p50_ms": round(pct(span[name], 50), 1),
            }
        out["b_latency_fair_over_fifo"] = round(
            statistics.median(lat["fair"]) / statistics.median(lat["fifo"]), 3
        )
        out["a_makespan_fair_over_fifo"] = round(
            statistics.median(span["fair"]) / statistics.median(span["fifo"]), 3
        )
    finally:
        await queue.stop()
        await runtime.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--sleep", type=float, default=1.0)
    ap.add_argument("--delay", type=float, default=0.3, help="B submits this long after A")
    args = ap.parse_args()
    res = asyncio.run(run(args.rounds, args.batch, args.sleep, args.delay))
    res["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release()}
    print(
        f"workers {res['workers']}, A's batch {res['batch']} x sleep {res['sleep_s']} s, "
        f"B submits {res['b_arrives_after_s']} s later"
    )
    print(f"{'policy':<6} {'B p50 ms':>10} {'B p99 ms':>10} {'A makespan p50 ms':>18}")
    for name in ("fair", "fifo"):
        r = res[name]
        print(
            f"{name:<6} {r['b_latency_p50_ms']:>10} {r['b_latency_p99_ms']:>10} "
            f"{r['a_makespan_p50_ms']:>18}"
        )
    print(f"floor: B's job on an idle queue p50 {res['floor_quick_job_ms']['p50']} ms")
    print(
        f"B latency fair/fifo {res['b_latency_fair_over_fifo']}, "
        f"A makespan fair/fifo {res['a_makespan_fair_over_fifo']}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
