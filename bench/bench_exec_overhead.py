"""The sandbox's own cost per execution, in one run on this host (target: overhead p50 < 10 ms).

Interleaved, so every figure sees the same machine load:
- plain: ``/bin/true`` as an unsandboxed asyncio subprocess (the baseline);
- floor: a bare ``bwrap --unshare-all ... true`` as the sandbox uid (bwrap's own set-up cost);
- exec_unpooled: ``Sandbox.exec(["/bin/true"])`` on a started sandbox (spawns bwrap);
- exec_pooled: the same as the first exec of a pooled ephemeral sandbox (a zygote released);
- job_unpooled / job_pooled: what a judge job pays around it: ``ephemeral({...})`` enter, the
  exec, exit (the pool is refilled between runs: the steady state of a machine that is not
  saturated; when jobs outrun the refill they take the normal path).

overhead = sandboxed - plain, per run pair; p50 and p99 of that. Run as root:
``.venv/bin/python bench/bench_exec_overhead.py [runs]``; writes bench/results/exec_overhead.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchstats import summary
from coolcoding.sandbox.base import SandboxSpec
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.settings import Settings


async def timed_plain() -> float:
    t = time.perf_counter()
    p = await asyncio.create_subprocess_exec("/bin/true")
    await p.wait()
    return (time.perf_counter() - t) * 1000


async def main(runs: int) -> None:
    bases = [Path(tempfile.mkdtemp(prefix="cc-bench-", dir="/tmp")) for _ in range(2)]
    runtimes = []
    for i, (base, size) in enumerate(
        zip(bases, (0, 2), strict=True)
    ):  # own data dir and cgroups each
        os.chmod(base, 0o711)
        parent = f"coolcoding-bench-{os.getpid()}-{i}"
        runtimes.append(LocalRuntime(Settings(data_dir=base, sandbox_cgroup_parent=parent,
                                              sandbox_pool_size=size)))  # fmt: skip
    plain_rt, pooled_rt = runtimes
    xs: dict[str, list[float]] = {k: [] for k in (
        "plain", "floor", "exec_unpooled", "exec_pooled", "job_unpooled", "job_pooled")}  # fmt: skip
    try:
        sb = await plain_rt.start(SandboxSpec(session_uuid=str(uuid.uuid4())))
        assert isinstance(sb, LocalSandbox)
        uid, gid = sb.creds.uid, sb.creds.gid

        def drop() -> None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)

        floor_argv = [plain_rt.settings.sandbox_bwrap_path, "--unshare-all", "--die-with-parent",
                      "--new-session", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib64",
                      "/lib64", "--symlink", "usr/lib", "/lib", "--proc", "/proc", "--dev", "/dev",
                      "--", "/usr/bin/true"]  # fmt: skip
        for _ in range(runs):
            xs["plain"].append(await timed_plain())
            t = time.perf_counter()
            subprocess.run(floor_argv, preexec_fn=drop, check=True)
            xs["floor"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            r = await sb.exec(["/bin/true"])
            xs["exec_unpooled"].append((time.perf_counter() - t) * 1000)
            assert r.exit_code == 0, r
            for rt, kind in ((plain_rt, "unpooled"), (pooled_rt, "pooled")):
                await rt.pool.wait_full()
                t_job = time.perf_counter()
                async with rt.ephemeral({"main.c": b"int main(){}"}) as box:
                    assert isinstance(box, LocalSandbox)
                    t = time.perf_counter()
                    r = await box.exec(["/bin/true"])
                    exec_ms = (time.perf_counter() - t) * 1000
                    assert r.exit_code == 0 and box.pooled_execs == (kind == "pooled"), r
                xs[f"job_{kind}"].append((time.perf_counter() - t_job) * 1000)
                if kind == "pooled":
                    xs["exec_pooled"].append(exec_ms)
    finally:
        for rt, base in zip(runtimes, bases, strict=True):
            await rt.shutdown()  # removes its sandboxes and cgroups
            shutil.rmtree(base, ignore_errors=True)

    results = {f"{k}_ms": summary(v) for k, v in xs.items()}
    for k in ("floor", "exec_unpooled", "exec_pooled", "job_unpooled", "job_pooled"):
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
    path = Path(__file__).parent / "results" / "exec_overhead.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
