"""Is the judged program itself slower in its sandbox? (issue 10)

Interleaved rounds at the same concurrency: ``n`` Python hello jobs through a ``coolcoding serve``
(``POST /api/executions?wait=true``), each job's own ``cpu_ms`` (its exec cgroup's CPU: the
zygote's exec and the program), against the same program run ``n`` times unsandboxed (its CPU
from RUSAGE_CHILDREN). Medians and p99 per round; the ratio is sandboxed / unsandboxed.

Usage: .venv/bin/python bench/bench_judge_program_cpu.py [-n 200] [--rounds 4] [--conc 1,20]
(root; sandboxes need cgroups and uids). Writes bench/results/judge_program_cpu.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccserver import Server, pct

PY = 'print("hello")\n'
RESULTS = Path(__file__).resolve().parent / "results" / "judge_program_cpu.json"


async def judged(srv: Server, n: int, conc: int) -> list[float]:
    out: list[float] = []
    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(base_url=srv.base, headers=srv.headers, timeout=120) as c:

        async def one() -> None:
            async with sem:
                r = await c.post(
                    "/api/executions?wait=true", json={"language": "python", "source": PY}
                )
                body: dict[str, Any] = r.json()
                out.append(float(body["cpu_ms"]))

        await asyncio.gather(*(one() for _ in range(n)))
    return out


async def unsandboxed(n: int, conc: int) -> float:
    """CPU per run (ms) of ``n`` runs, ``conc`` at a time."""
    sem = asyncio.Semaphore(conc)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)

    async def one() -> None:
        async with sem:
            p = await asyncio.create_subprocess_exec(
                "/usr/bin/python3", "-c", PY, stdout=asyncio.subprocess.DEVNULL
            )
            await p.wait()

    await asyncio.gather(*(one() for _ in range(n)))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return used * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--conc", default="1,20", help="concurrencies, comma-separated")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    srv = Server(EXEC_RATE_LIMIT_PER_MINUTE="1000000")
    rounds: dict[str, list[dict[str, float]]] = {str(c): [] for c in concs}
    try:
        asyncio.run(judged(srv, 40, 4))  # warm-up: pools full, pages read
        for _ in range(args.rounds):
            for conc in concs:
                cpu = asyncio.run(judged(srv, args.n, conc))
                floor = asyncio.run(unsandboxed(args.n, conc))
                med = statistics.median(cpu)
                rounds[str(conc)].append(
                    {"sandboxed_p50": med, "sandboxed_p99": pct(cpu, 99), "unsandboxed": floor}
                )
                print(
                    f"conc {conc}: sandboxed cpu_ms p50 {med:.2f} p99 {pct(cpu, 99):.2f}, "
                    f"unsandboxed {floor:.2f} ms per run: {med / floor:.2f}x"
                )
    finally:
        srv.stop()
    summary = {
        c: {
            "sandboxed_p50_median": round(statistics.median(r["sandboxed_p50"] for r in rs), 2),
            "unsandboxed_median": round(statistics.median(r["unsandboxed"] for r in rs), 2),
            "ratio_median": round(
                statistics.median(r["sandboxed_p50"] / r["unsandboxed"] for r in rs), 3
            ),
        }
        for c, rs in rounds.items()
    }
    result = {"n": args.n, "rounds": rounds, "summary": summary, "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
