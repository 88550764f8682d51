"""A judge worker's CPU while its job runs and waits (a sleep, I/O, an interactive exchange):
``coolcoding worker --slots 1`` with one job of ``time.sleep(--job-s)``, the worker's CPU
(scheduler time of all its threads, /proc/<pid>/task/*/schedstat: exact, not tick-sampled)
over a ``--window-s`` window in the middle of the job; this build vs another checkout
(``--baseline DIR``, its own .venv), interleaved rounds, PostgreSQL queue.

    .venv/bin/python bench/bench_running_job_cpu.py --baseline DIR [--rounds 5] [--job-s 6] [--window-s 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench_judge_workers import queue_platform, start_workers
from benchstats import ratio
from coolcoding.services.executions import ExecutionService, JobRequest

RESULTS = Path(__file__).parent / "results" / "running_job_cpu.json"


def sched_ms(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in ms (the scheduler's own count)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, IndexError):
            continue
    return total / 1e6


async def one_round(
    svc: ExecutionService, user_id: int, env: dict[str, str], python: str, job_s: float,
    window_s: float,
) -> float:  # fmt: skip
    """The worker's CPU (ms per second) in a window while its one job sleeps."""
    (worker,) = start_workers(1, env, python)
    try:
        program = f"import time\ntime.sleep({job_s})\n"
        await svc.submit(user_id, [JobRequest(language="python", source=program)])
        await asyncio.sleep((job_s - window_s) / 2 + 0.5)  # claimed and started by then
        before = sched_ms(worker.pid)
        await asyncio.sleep(window_s)
        return (sched_ms(worker.pid) - before) / window_s
    finally:
        worker.terminate()
        worker.wait(60)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    xs: dict[str, list[float]] = {"ours": [], "baseline": []}
    pythons = {"ours": sys.executable, "baseline": str(Path(args.baseline) / ".venv/bin/python")}
    async with queue_platform() as (svc, user_id, env):
        for r in range(args.rounds):
            for arm in ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours"):
                cpu = await one_round(svc, user_id, env, pythons[arm], args.job_s, args.window_s)
                xs[arm].append(cpu)
                print(f"round {r}: {arm} {cpu:.2f} ms/s", flush=True)
    return {
        "what": "a judge worker's CPU (ms per second, all threads, schedstat) while its one job "
        f"sleeps {args.job_s} s, over a {args.window_s} s window; this build vs the baseline",
        "baseline": args.baseline,
        "rounds": args.rounds,
        "ours_ms_per_s": [round(x, 2) for x in xs["ours"]],
        "baseline_ms_per_s": [round(x, 2) for x in xs["baseline"]],
        "median_ours": round(statistics.median(xs["ours"]), 2),
        "median_baseline": round(statistics.median(xs["baseline"]), 2),
        "ratio_ours_vs_baseline": ratio(xs["ours"], xs["baseline"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="another checkout (with its .venv)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--job-s", type=float, default=6.0)
    ap.add_argument("--window-s", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    result = asyncio.run(main_async(args))
    print(result)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
