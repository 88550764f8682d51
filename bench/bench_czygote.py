"""The C zygote (sandbox/local/zygote.c) against the bash one, CPU per job, interleaved job by
job in one run.

Part 1, on the host (no bwrap: the zygote's own cost), one process per job, CPU from ``wait4``
over its whole life (start, the wait, the request, the exec, the program): ``bash`` (the
script and env(1)), ``c`` (the shipped zygote.c, built and exec'd from its sealed memfd as in
a sandbox), ``direct`` (the program exec'd by Python with the request's environment: the
floor). Program: ``/bin/true``, so what differs is the zygote.

Part 2, pooled first execs in real judge sandboxes: two runtimes (``sandbox_zygote=c`` and
``bash``, a pool of 1 each), one job on each in turn, ``/bin/true``. CPU of the exec's cgroup
split at the release: ``setup`` (bwrap's set-up and the zygote's start, what the pool spends
before the job; read just before the release resets the accounting) and ``job`` (the release to
the exit: the request, the exec, the program, bwrap's pid 1; what ``cpu_ms`` reports).

Usage (root): .venv/bin/python bench/bench_czygote.py [--jobs 200] [--out czygote]
Writes bench/results/<out>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchstats import ratio, summary
from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local import bwrap, czygote, zygote
from coolcoding.sandbox.local.cgroups import Cgroup
from coolcoding.sandbox.local.sandbox import LocalSandbox, rlimits_for
from sandboxruntime import bench_runtime, write_figures

PROGRAM = ["/bin/true"]


def host_job(kind: str, request: bytes, zyg: czygote.CZygote) -> float:
    """CPU ms of one zygote's whole life (``wait4``), the program included."""
    ctl_r, ctl_w = os.pipe()
    go_r, go_w = os.pipe()
    req = os.memfd_create("req")
    if kind == "bash":
        cmd, env = zygote.zygote_command(go_r, ctl_w, req), bwrap.sandbox_env(zygote.ZYGOTE_ENV)
        fds: tuple[int, ...] = (go_r, ctl_w, req)
    else:
        cmd, env, fds = zyg.command(go_r, ctl_w, req), {}, (zyg.fd, go_r, ctl_w, req)
    p = subprocess.Popen(cmd, env=env, pass_fds=fds, stdout=subprocess.DEVNULL)
    os.close(go_r)
    os.close(ctl_w)
    assert os.read(ctl_r, 1) == b"R"
    os.pwrite(req, request, 0)
    os.write(go_w, zygote.RELEASE)
    os.close(go_w)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0 and os.read(ctl_r, 8) == b"", (kind, p.returncode)
    os.close(ctl_r)
    os.close(req)
    return (ru.ru_utime + ru.ru_stime) * 1000


def direct_job(cwd: str, env: dict[str, str]) -> float:
    p = subprocess.Popen(PROGRAM, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return (ru.ru_utime + ru.ru_stime) * 1000


def part1(jobs: int, work: Path) -> dict[str, Any]:
    zyg = czygote.load(work / "cache")
    env = bwrap.sandbox_env()
    rl = rlimits_for(nproc=80, fsize=100 << 20, cpu_s=5.0)
    request = zygote.encode_request(PROGRAM, str(work), env, rl)
    assert request is not None
    cpu: dict[str, list[float]] = {"direct": [], "bash": [], "c": []}
    try:
        for _ in range(jobs):
            cpu["direct"].append(direct_job(str(work), {**env, "PWD": str(work)}))
            cpu["bash"].append(host_job("bash", request, zyg))
            cpu["c"].append(host_job("c", request, zyg))
    finally:
        zyg.close()
    return {
        "jobs": jobs,
        "cpu_ms": {k: summary(v, 3) for k, v in cpu.items()},
        "c_over_bash": ratio(cpu["c"], cpu["bash"]),
        "over_direct": {k: ratio(v, cpu["direct"]) for k, v in cpu.items()},
    }


async def part2(jobs: int) -> dict[str, Any]:
    setup: dict[str, list[float]] = {"c": [], "bash": []}
    job: dict[str, list[float]] = {"c": [], "bash": []}
    pending: list[float] = []
    real_reset = Cgroup.reset_accounting

    def reset(self: Cgroup) -> None:  # the zygote's set-up CPU, before the release resets it
        pending.append(self._raw_cpu_ns() / 1e6)
        real_reset(self)

    Cgroup.reset_accounting = reset  # type: ignore[method-assign]
    try:
        async with (
            bench_runtime("-zc", sandbox_pool_size=1, sandbox_zygote="c") as rt_c,
            bench_runtime("-zb", sandbox_pool_size=1, sandbox_zygote="bash") as rt_b,
        ):
            runtimes = {"c": rt_c, "bash": rt_b}
            for _ in range(jobs):
                for kind, rt in runtimes.items():
                    await rt.pool.wait_full(60)
                    pending.clear()
                    async with rt.ephemeral({}) as box:
                        assert isinstance(box, LocalSandbox) and box.warm is not None
                        r = await box.exec(PROGRAM, limits=ExecLimits(cpu_s=10, wall_s=60))
                        assert r.exit_code == 0 and box.pooled_execs == 1, r
                    setup[kind].append(pending[0])
                    job[kind].append(r.cpu_ms)
            assert rt_c.zygotes.current is not None and rt_b.zygotes.current is None
    finally:
        Cgroup.reset_accounting = real_reset  # type: ignore[method-assign]
    total = {k: [a + b for a, b in zip(setup[k], job[k], strict=True)] for k in setup}
    return {
        "jobs": jobs,
        "setup_cpu_ms": {k: summary(v, 3) for k, v in setup.items()},
        "job_cpu_ms": {k: summary(v, 3) for k, v in job.items()},
        "total_cpu_ms": {k: summary(v, 3) for k, v in total.items()},
        "c_over_bash": {
            "setup": ratio(setup["c"], setup["bash"]),
            "job": ratio(job["c"], job["bash"]),
            "total": ratio(total["c"], total["bash"]),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200, help="jobs per zygote, each part")
    ap.add_argument("--out", default="czygote")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (sandboxes need cgroups and uids)")
    work = Path(tempfile.mkdtemp(prefix="cc-bench-czyg-"))
    os.chmod(work, 0o755)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    t0 = time.perf_counter()
    result["host_zygote"] = part1(args.jobs, work)
    result["pooled_exec"] = asyncio.run(part2(args.jobs))
    result["load_avg_at_end"] = os.getloadavg()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=1))
    write_figures(args.out, result)


if __name__ == "__main__":
    main()
