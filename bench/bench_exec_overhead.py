"""The sandbox's own cost per execution, in one run on this host (target: overhead p50 < 10 ms).

Interleaved, so every figure sees the same machine load:
- plain: ``/bin/true`` as an unsandboxed asyncio subprocess (the baseline);
- floor: a bare ``bwrap --unshare-all ... true`` as the sandbox uid (bwrap's own set-up cost);
- exec_unpooled: ``Sandbox.exec(["/bin/true"])`` on a started sandbox (spawns bwrap);
- exec_pooled: the same as the first exec of a pooled ephemeral sandbox (a zygote released);
- job_unpooled / job_pooled: what a judge job pays around it: ``ephemeral({...})`` enter, the
  exec, exit (the pool is refilled between runs: the steady state of a machine that is not
  saturated; when jobs outrun the refill they take the normal path);
- job_reused: the same in a reused, wiped sandbox of the same owner (reuse.py);
- cpu_*: this process's CPU (all threads) per job, its clean-up and the refill or wipe included.

overhead = sandboxed - plain, per run pair; p50 and p99 of that. Run as root:
``.venv/bin/python bench/bench_exec_overhead.py [runs]``; writes bench/results/exec_overhead.json.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
import uuid

from benchstats import summary
from coolcoding.sandbox.base import SandboxSpec
from coolcoding.sandbox.local.sandbox import LocalSandbox
from sandboxruntime import bare_bwrap_true_ms, bench_runtime, write_figures


async def timed_plain() -> float:
    t = time.perf_counter()
    p = await asyncio.create_subprocess_exec("/bin/true")
    await p.wait()
    return (time.perf_counter() - t) * 1000


async def main(runs: int) -> None:
    xs: dict[str, list[float]] = {k: [] for k in (
        "plain", "floor", "exec_unpooled", "exec_pooled", "job_unpooled", "job_pooled",
        "job_reused", "cpu_unpooled", "cpu_pooled", "cpu_reused")}  # fmt: skip
    async with (
        bench_runtime("-0", sandbox_pool_size=0) as plain_rt,
        bench_runtime("-1", sandbox_pool_size=2) as pooled_rt,
    ):  # own data dir and cgroups each
        sb = await plain_rt.start(SandboxSpec(session_uuid=str(uuid.uuid4())))
        assert isinstance(sb, LocalSandbox)
        uid, gid = sb.creds.uid, sb.creds.gid

        bwrap = plain_rt.settings.sandbox_bwrap_path
        for _ in range(runs):
            xs["plain"].append(await timed_plain())
            xs["floor"].append(bare_bwrap_true_ms(bwrap, uid, gid))
            t = time.perf_counter()
            r = await sb.exec(["/bin/true"])
            xs["exec_unpooled"].append((time.perf_counter() - t) * 1000)
            assert r.exit_code == 0, r
            for rt, kind, owner in (
                (plain_rt, "unpooled", ""),
                (pooled_rt, "pooled", ""),
                (pooled_rt, "reused", "bench"),
            ):
                await rt.pool.wait_full()
                await rt.reuse.drain()
                cpu = time.process_time()
                t_job = time.perf_counter()
                async with rt.ephemeral({"main.c": b"int main(){}"}, owner=owner) as box:
                    assert isinstance(box, LocalSandbox)
                    t = time.perf_counter()
                    r = await box.exec(["/bin/true"])
                    exec_ms = (time.perf_counter() - t) * 1000
                    assert r.exit_code == 0 and box.pooled_execs == (kind != "unpooled"), r
                xs[f"job_{kind}"].append((time.perf_counter() - t_job) * 1000)
                if kind == "pooled":
                    xs["exec_pooled"].append(exec_ms)
                # this process's CPU for the job, its clean-up and the refill (or the wipe)
                await rt.pool.wait_full()
                await rt.reuse.drain()
                xs[f"cpu_{kind}"].append((time.process_time() - cpu) * 1000)

    results = {f"{k}_ms": summary(v) for k, v in xs.items()}
    for k in ("floor", "exec_unpooled", "exec_pooled", "job_unpooled", "job_pooled", "job_reused"):
        results[f"overhead_{k}_ms"] = summary(
            [a - b for a, b in zip(xs[k], xs["plain"], strict=True)]
        )
    print(f"{'measure':32s} {'p50':>8s} {'p99':>8s} {'min':>8s}  (ms, {runs} runs)")
    for name, s in results.items():
        print(f"{name:32s} {s['p50']:8.2f} {s['p99']:8.2f} {s['min']:8.2f}")
    out = {
        "runs": runs,
        "host": {
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "cgroup_version": plain_rt.host.cgroups.version,
            "bwrap": plain_rt.host.bwrap_version,
        },
        "targets": {"overhead_exec_p50_ms": 10},
        "results": results,
    }
    write_figures("exec_overhead", out)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
