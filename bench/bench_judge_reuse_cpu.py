"""Reused judge sandboxes (sandbox/local/reuse.py) against a never-used sandbox per job: this
process's CPU (all threads: event loop, executor, the wipe or the refill) per judged job, without
the HTTP stack and the database, in interleaved rounds of one run.

Two runtimes in this process, ``sandbox_judge_reuse`` on and off, each behind a ``Judge``; per
round and runtime, ``-n`` Python hello jobs of one user, ``--slots`` at a time (the judge
workers), then until its pools are full again and its wipes done. Run as root:
``.venv/bin/python bench/bench_judge_reuse_cpu.py [-n 100] [--rounds 5] [--slots 4]``;
writes bench/results/judge_reuse_cpu.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_exec import pct
from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.sandbox.local.runtime import LocalRuntime
from sandboxruntime import bench_runtime

RESULTS = Path(__file__).parent / "results" / "judge_reuse_cpu.json"


async def round_cpu_ms(rt: LocalRuntime, judge: Judge, n: int, slots: int) -> tuple[float, float]:
    """(CPU ms per job, jobs/s) for ``n`` jobs of one user, ``slots`` at a time."""
    job = JudgeJob(language="python", files={"main.py": b'print("hello")\n'}, entry="main.py",
                   limits=resolve_limits({}, rt.settings), cache_scope="user:bench")  # fmt: skip
    sem = asyncio.Semaphore(slots)

    async def one() -> None:
        async with sem:
            r = await judge.judge(job)
            assert r.stdout == b"hello\n", r

    await rt.pool.wait_full()
    await rt.reuse.drain()
    cpu, t = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - t
    await rt.pool.wait_full(30)
    await rt.reuse.drain()
    return (time.process_time() - cpu) * 1000 / n, n / wall


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    load_start = round(os.getloadavg()[0], 2)
    languages = LanguageRegistry()
    await languages.detect_versions()
    cpu: dict[str, list[float]] = {"reuse": [], "no reuse": []}
    rate: dict[str, list[float]] = {"reuse": [], "no reuse": []}
    async with (
        bench_runtime("-r", sandbox_judge_reuse=True) as on,
        bench_runtime("-n", sandbox_judge_reuse=False) as off,
    ):
        judges = {"reuse": (on, Judge(on, languages, on.settings)),
                  "no reuse": (off, Judge(off, languages, off.settings))}  # fmt: skip
        for rt, judge in judges.values():  # warm-up
            await round_cpu_ms(rt, judge, 2 * args.slots, args.slots)
        for i in range(args.rounds):
            order = list(judges.items()) if i % 2 == 0 else list(judges.items())[::-1]
            for name, (rt, judge) in order:
                c, r = await round_cpu_ms(rt, judge, args.n, args.slots)
                cpu[name].append(round(c, 3))
                rate[name].append(round(r, 2))
        reused, wiped, destroyed = on.reuse.reused, on.reuse.wiped, on.reuse.destroyed
    med = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "n": args.n,
        "rounds": args.rounds,
        "slots": args.slots,
        "cpu_ms_per_job": cpu,
        "cpu_ms_per_job_median": {k: round(v, 3) for k, v in med.items()},
        "cpu_ms_per_job_p99": {k: round(pct(v, 99), 3) for k, v in cpu.items()},
        "ratio_cpu_reuse_vs_no_reuse": round(med["reuse"] / med["no reuse"], 3),
        "jobs_per_s": rate,
        "ratio_jobs_per_s_reuse_vs_no_reuse": round(
            statistics.median(rate["reuse"]) / statistics.median(rate["no reuse"]), 3
        ),
        "reuse_counters": {"reused": reused, "wiped": wiped, "destroyed": destroyed},
        "load_avg_1m_at_start": load_start,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
