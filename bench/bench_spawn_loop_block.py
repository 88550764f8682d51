"""How long the event loop is held while the spawner helper forks (issue 10, async spawn).

One process per build (this checkout, and ``--baseline DIR``: another checkout with its own
.venv, e.g. the build whose ``Spawner.spawn`` waited synchronously for the helper's answer)
spawns ``-n`` ``/bin/true`` children through ``SPAWNER``, ``--concurrency`` at a time, while a
ticker asks to wake every 1 ms. The loop's lag (how late each tick ran) is the time the loop
could do nothing else: in the server, every HTTP request and job waits behind it. Rounds of the
two builds alternate (interleaved); medians and p99 of the lag, spawns/s, load average.

Usage: .venv/bin/python bench/bench_spawn_loop_block.py [-n 300] [--rounds 5] [--concurrency 20]
[--baseline DIR] [--out FILE]. Writes bench/results/spawn_loop_block.json. No root needed.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from benchstats import pct

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "spawn_loop_block.json"


async def one_round(n: int, concurrency: int) -> dict[str, float]:
    """In the child process: spawn ``n`` children; the loop's lag and the spawn rate."""
    from coolcoding.sandbox.local.spawner import SPAWNER, SpawnSetup

    setup = SpawnSetup(procs_files=[], rlimits=[], uid=0, gid=0, drop=False)
    is_async = inspect.iscoroutinefunction(SPAWNER.spawn)
    pids: list[int] = []
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append((time.perf_counter() - t - 0.001) * 1000)

    async def spawn() -> None:
        kw: dict[str, Any] = {"env": {}, "setup": setup, "stdin": 0, "stdout": 1, "stderr": 2,
                              "pass_fds": (), "new_session": True}  # fmt: skip
        if is_async:
            pids.append(await SPAWNER.spawn(["/bin/true"], **kw))
        else:
            pids.append(SPAWNER.spawn(["/bin/true"], **kw))
            await asyncio.sleep(0)

    sem = asyncio.Semaphore(concurrency)

    async def limited() -> None:
        async with sem:
            await spawn()

    await spawn()  # the helper started (once per thread), outside the measurement
    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(n)))
    elapsed = time.perf_counter() - t0
    done = True
    await tick
    for pid in pids:
        os.waitpid(pid, 0)  # after the measurement
    return {
        "spawns_per_s": n / elapsed,
        "lag_p50_ms": statistics.median(lags),
        "lag_p99_ms": pct(lags, 99),
        "lag_max_ms": max(lags),
        "ticks": len(lags),
    }


def run_build(root: Path, n: int, concurrency: int) -> dict[str, float]:
    out = subprocess.run(
        [str(root / ".venv/bin/python"), __file__, "--child", "-n", str(n),
         "--concurrency", str(concurrency)],
        check=True, capture_output=True, cwd=root,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(one_round(args.n, args.concurrency))))
        return
    load_start = round(os.getloadavg()[0], 2)
    builds = {"this": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in builds}
    for _ in range(args.rounds):
        for name, root in builds.items():
            rounds[name].append(run_build(root, args.n, args.concurrency))

    def med(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rounds[name]), 2)

    keys = ("spawns_per_s", "lag_p50_ms", "lag_p99_ms", "lag_max_ms")
    result: dict[str, Any] = {
        "n": args.n,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "baseline": str(args.baseline) if args.baseline else None,
        "medians": {name: {k: med(name, k) for k in keys} for name in builds},
        "rounds_raw": rounds,
        "load_avg_1m_at_start": load_start,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    if args.baseline:
        result["ratio_this_vs_baseline"] = {
            k: round(med("this", k) / med("baseline", k), 3) for k in keys if med("baseline", k)
        }
    print(json.dumps({k: v for k, v in result.items() if k != "rounds_raw"}, indent=2))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
