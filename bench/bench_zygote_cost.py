"""What the pooled exec's zygote costs (sandbox/local/zygote.py), and python3 hello inside a
judge sandbox against outside (issue 10), in interleaved rounds of one run.

Part 1, the zygote on the host (no bwrap: its own cost, nothing else), one process per run, its
CPU from ``wait4`` (the zygote's whole life: bash start, the wait, the request, ``env -i``, the
program) and the wall time from the release to its exit:
- direct: the program ``exec``ed with the request's environment (the floor);
- previous: 5f62f99's zygote (request on a pipe: bash reads it one byte per ``read(2)``, one
  redirection per check, the sandbox's ``LANG=C.UTF-8`` loaded by bash and env(1));
- current: this build's (request in a memfd, one redirection, ``LC_ALL=C``);
- c_helper: a prototype C zygote compiled here (same protocol), for the figure of what
  dropping bash and env(1) would save (the shipped one, zygote.c: bench_czygote.py).
Programs: ``/bin/true`` (the zygote's overhead alone) and ``python3 main.py`` (hello).

Part 2, python3 hello per run, inside a sandbox started the way the judge does (ephemeral,
the language's env, the exec's rlimits, seccomp, cgroup), against the same loop on the host:
``bash -c 'for ...; do python3 main.py; done'`` minus the same loop of ``/bin/true``, CPU from
the exec cgroup inside and ``wait4`` outside; plus the sandbox without its seccomp filter.

Part 3, 20 pooled first execs of python3 hello at once against 20 on the host; part 4, one at
a time, python3 and /bin/true: the pooled exec's constant cost (its cgroup also holds the
zygote's tail, env(1) and bwrap's pid 1 until it exits).

Usage (root): .venv/bin/python bench/bench_zygote_cost.py [--runs 300] [--loops 5 --n 60]
Writes bench/results/zygote_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchstats import ratio, summary
from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local import bwrap, zygote
from coolcoding.sandbox.local.sandbox import LocalSandbox, rlimits_for
from sandboxruntime import bench_runtime, write_figures

HELLO = b'print("hello")\n'
PY_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}

# 5f62f99's script, verbatim: $1 request pipe, $2 control fd.
PREVIOUS_SCRIPT = r"""req=$1 ctl=$2
printf R >&"$ctl"
f=()
while IFS= read -r -d '' -u "$req" x; do f+=("$x"); done
fail() { printf X >&"$ctl"; exit 127; }
i=3
for ((k = 0; k < f[2]; k++, i += 3)); do
  ulimit "-${f[i]}" "${f[i+2]}" 2>/dev/null && ulimit -S "-${f[i]}" "${f[i+1]}" 2>/dev/null || fail
done
n=${f[i]}
PATH=${f[1]}
cd -P -- "${f[0]}" 2>/dev/null && type -P -- "${f[i+1+n]}" >/dev/null || fail
exec {req}<&- {ctl}>&-
exec /usr/bin/env -i -- "${f[@]:i+1:n}" "${f[@]:i+1+n}"
"""

# The same protocol as the current script, in C: argv[1..3] = release, control, request fds.
C_HELPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
static int res_of(char c) {
  switch (c) { case 'c': return RLIMIT_CORE; case 'u': return RLIMIT_NPROC;
  case 'f': return RLIMIT_FSIZE; case 'n': return RLIMIT_NOFILE; case 't': return RLIMIT_CPU; }
  return -1;
}
static rlim_t val(const char *s, char c) {
  if (!strcmp(s, "unlimited")) return RLIM_INFINITY;
  rlim_t v = strtoull(s, 0, 10);
  return (c == 'c' || c == 'f') ? v * 1024 : v;
}
int main(int argc, char **argv) {
  int go = atoi(argv[1]), ctl = atoi(argv[2]), req = atoi(argv[3]);
  static char buf[65536], *f[8192];
  char b;
  if (write(ctl, "R", 1) != 1 || read(go, &b, 1) != 1) return 1;
  ssize_t len = pread(req, buf, sizeof buf - 1, 0);
  if (len <= 0) return 1;
  int nf = 0;
  for (char *p = buf; p < buf + len && nf < 8191; p += strlen(p) + 1) f[nf++] = p;
  int k = atoi(f[2]), i = 3;
  for (int j = 0; j < k; j++, i += 3) {
    struct rlimit rl = {val(f[i + 1], f[i][0]), val(f[i + 2], f[i][0])};
    if (setrlimit(res_of(f[i][0]), &rl)) goto fail;
  }
  int n = atoi(f[i]);
  char *envp[8192], **args = &f[i + 1 + n];
  memcpy(envp, &f[i + 1], n * sizeof *envp);
  envp[n] = 0;
  f[nf] = 0;
  if (chdir(f[0])) goto fail;
  setenv("PATH", f[1], 1);  /* execvpe searches the caller's PATH: the request's */
  close(go); close(req);
  fcntl(ctl, F_SETFD, FD_CLOEXEC);  /* closed by a successful exec, kept to report a failure */
  execvpe(args[0], args, envp);
fail:
  if (write(ctl, "X", 1)) {}
  return 127;
}
"""


def build_c_helper(work: Path) -> str | None:
    src, out = work / "zygote_c.c", work / "zygote_c"
    src.write_text(C_HELPER)
    cmd = ["gcc", "-O2", "-D_GNU_SOURCE", "-static", "-o", str(out), str(src)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        cmd.remove("-static")
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
    return str(out)


def one_zygote(kind: str, request: bytes, helper: str | None) -> tuple[float, float]:
    """(CPU ms of the zygote's whole life, wall ms from the release to its exit)."""
    ctl_r, ctl_w = os.pipe()
    go_r, go_w = os.pipe()
    req = os.memfd_create("req")
    env = bwrap.sandbox_env()
    if kind == "previous":
        cmd = ["/bin/bash", "--noprofile", "--norc", "-c", PREVIOUS_SCRIPT, "z", str(go_r),
               str(ctl_w)]  # fmt: skip
    elif kind == "current":
        cmd = zygote.zygote_command(go_r, ctl_w, req)
        env |= zygote.ZYGOTE_ENV
    else:
        assert helper is not None
        cmd = [helper, str(go_r), str(ctl_w), str(req)]
    p = subprocess.Popen(cmd, env=env, pass_fds=(go_r, ctl_w, req), stdout=subprocess.DEVNULL)
    os.close(go_r)
    os.close(ctl_w)
    assert os.read(ctl_r, 1) == b"R"
    t0 = time.perf_counter()
    if kind == "previous":
        os.write(go_w, request)
    else:
        os.pwrite(req, request, 0)
        os.write(go_w, zygote.RELEASE)
    os.close(go_w)
    _, status, ru = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0 and os.read(ctl_r, 8) == b"", (kind, p.returncode)
    os.close(ctl_r)
    os.close(req)
    return (ru.ru_utime + ru.ru_stime) * 1000, wall


def one_direct(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0
    return (ru.ru_utime + ru.ru_stime) * 1000, wall


def part1(runs: int, work: Path) -> dict[str, Any]:
    helper = build_c_helper(work)
    (work / "main.py").write_bytes(HELLO)
    env = bwrap.sandbox_env(PY_ENV)
    rl = rlimits_for(nproc=80, fsize=100 << 20, cpu_s=5.0)
    kinds = ["direct", "previous", "current"] + (["c_helper"] if helper else [])
    out: dict[str, Any] = {"c_helper_built": helper is not None}
    for prog_name, argv in (("true", ["/bin/true"]), ("python3", ["python3", "main.py"])):
        request = zygote.encode_request(argv, str(work), env, rl)
        assert request is not None
        full_env = {**env, "PWD": str(work)}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        wall: dict[str, list[float]] = {k: [] for k in kinds}
        n = runs if prog_name == "true" else max(20, runs // 4)
        for _ in range(n):
            for k in kinds:
                if k == "direct":
                    c, w = one_direct(argv, str(work), full_env)
                else:
                    c, w = one_zygote(k, request, helper)
                cpu[k].append(c)
                wall[k].append(w)
        out[prog_name] = {
            "runs": n,
            "cpu_ms": {k: summary(v, 3) for k, v in cpu.items()},
            "release_to_exit_ms": {k: summary(v, 3) for k, v in wall.items()},
            "cpu_ratio_vs_previous": {k: ratio(cpu[k], cpu["previous"]) for k in kinds},
            "cpu_ratio_vs_direct": {k: ratio(cpu[k], cpu["direct"]) for k in kinds},
        }
    return out


def loop(cmd: str, n: int) -> list[str]:
    return ["/bin/bash", "-c", f"for ((i = 0; i < {n}; i++)); do {cmd} >/dev/null; done"]


def host_loop(cmd: str, n: int, cwd: Path) -> float:
    env = {**bwrap.sandbox_env(PY_ENV), "PWD": str(cwd)}
    p = subprocess.Popen(loop(cmd, n), cwd=cwd, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0
    return (ru.ru_utime + ru.ru_stime) * 1000


async def part2(loops: int, n: int, work: Path) -> dict[str, Any]:
    (work / "main.py").write_bytes(HELLO)
    py, true = "/usr/bin/python3 main.py", "/bin/true"
    kinds = ("outside", "inside", "inside_no_seccomp")
    per_run: dict[str, list[float]] = {k: [] for k in kinds}
    async with bench_runtime("-zc", sandbox_pool_size=0) as rt:
        for _ in range(loops):
            for kind in kinds:
                if kind == "outside":
                    a, b = host_loop(py, n, work), host_loop(true, n, work)
                else:
                    async with rt.ephemeral({"main.py": HELLO}) as box:
                        assert isinstance(box, LocalSandbox)
                        if kind == "inside_no_seccomp":
                            box.seccomp_program = None
                        lim = ExecLimits(cpu_s=120, wall_s=300)
                        ra = await box.exec(loop(py, n), cwd=box.workspace_path, env=PY_ENV,
                                            limits=lim)  # fmt: skip
                        rb = await box.exec(loop(true, n), cwd=box.workspace_path, env=PY_ENV,
                                            limits=lim)  # fmt: skip
                        assert ra.exit_code == rb.exit_code == 0, (ra, rb)
                        a, b = ra.cpu_ms, rb.cpu_ms
                per_run[kind].append((a - b) / n)
    return {
        "loops": loops,
        "n_per_loop": n,
        "python3_hello_cpu_ms_per_run": {k: summary(v, 3) for k, v in per_run.items()},
        "ratio_vs_outside": {k: ratio(per_run[k], per_run["outside"]) for k in kinds},
    }


async def part3(rounds: int, clients: int, work: Path) -> dict[str, Any]:
    """``clients`` python3 hello at once: pooled first execs (CPU from each exec's cgroup:
    env(1) and python3) against host processes (``wait4``), the pool refilled between rounds
    so that only the programs run together."""
    (work / "main.py").write_bytes(HELLO)
    env = {**bwrap.sandbox_env(PY_ENV), "PWD": str(work)}
    per: dict[str, list[float]] = {"outside": [], "pooled": []}

    def host_one() -> float:
        p = subprocess.Popen(["/usr/bin/python3", "main.py"], cwd=work, env=env,
                             stdout=subprocess.DEVNULL)  # fmt: skip
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        assert p.returncode == 0
        return (ru.ru_utime + ru.ru_stime) * 1000

    pool = concurrent.futures.ThreadPoolExecutor(clients)
    loop = asyncio.get_running_loop()

    async with bench_runtime("-zp", sandbox_pool_size=clients) as rt:

        async def pooled_one() -> float:
            async with rt.ephemeral({"main.py": HELLO}) as box:
                assert isinstance(box, LocalSandbox) and box.warm is not None
                r = await box.exec(["/usr/bin/python3", "main.py"], cwd=box.workspace_path,
                                   env=PY_ENV, limits=ExecLimits(cpu_s=10, wall_s=60))  # fmt: skip
                assert r.exit_code == 0 and box.pooled_execs == 1, r
                return r.cpu_ms

        for _ in range(rounds):
            await rt.pool.wait_full(60)
            per["pooled"] += await asyncio.gather(*(pooled_one() for _ in range(clients)))
            per["outside"] += await asyncio.gather(
                *(loop.run_in_executor(pool, host_one) for _ in range(clients))
            )
    pool.shutdown()
    return {
        "rounds": rounds,
        "clients": clients,
        "python3_hello_cpu_ms_per_job": {k: summary(v, 3) for k, v in per.items()},
        "ratio_vs_outside": {k: ratio(per[k], per["outside"]) for k in per},
    }


async def part4(runs: int, work: Path) -> dict[str, Any]:
    """One pooled first exec at a time (its cgroup's CPU: the zygote after the release, env(1),
    the program, bwrap's pid 1 until it exits) against the same program on the host
    (``wait4``), for python3 hello and for /bin/true: what is constant per exec."""
    (work / "main.py").write_bytes(HELLO)
    env = {**bwrap.sandbox_env(PY_ENV), "PWD": str(work)}
    progs = {"python3": ["/usr/bin/python3", "main.py"], "true": ["/bin/true"]}
    per: dict[str, list[float]] = {f"{w}_{p}": [] for p in progs for w in ("outside", "pooled")}
    async with bench_runtime("-z4", sandbox_pool_size=2) as rt:
        for _ in range(runs):
            for name, argv in progs.items():
                await rt.pool.wait_full(60)
                async with rt.ephemeral({"main.py": HELLO}) as box:
                    assert isinstance(box, LocalSandbox) and box.warm is not None
                    r = await box.exec(argv, cwd=box.workspace_path, env=PY_ENV,
                                       limits=ExecLimits(cpu_s=10, wall_s=60))  # fmt: skip
                    assert r.exit_code == 0 and box.pooled_execs == 1, r
                per[f"pooled_{name}"].append(r.cpu_ms)
                per[f"outside_{name}"].append(one_direct(argv, str(work), env)[0])
    return {
        "runs": runs,
        "cpu_ms_per_job": {k: summary(v, 3) for k, v in per.items()},
        "pooled_minus_outside_p50_ms": {
            p: round(
                statistics.median(per[f"pooled_{p}"]) - statistics.median(per[f"outside_{p}"]), 3
            )
            for p in progs
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300, help="part 1: rounds (true; python: /4)")
    ap.add_argument("--loops", type=int, default=5, help="part 2: rounds")
    ap.add_argument("--n", type=int, default=60, help="part 2: python3 runs per loop")
    ap.add_argument("--rounds", type=int, default=10, help="part 3: rounds")
    ap.add_argument("--clients", type=int, default=20, help="part 3: jobs at once")
    ap.add_argument("--sequential", type=int, default=60, help="part 4: runs")
    ap.add_argument("--out", default="zygote_cost")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (sandboxes need cgroups and uids)")
    work = Path(tempfile.mkdtemp(prefix="cc-bench-zyg-"))
    os.chmod(work, 0o755)
    load_start = os.getloadavg()
    try:
        result: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_at_start": load_start}
        result["zygote"] = part1(args.runs, work)
        result["python3_inside_vs_outside"] = asyncio.run(part2(args.loops, args.n, work))
        result["python3_concurrent_pooled_vs_outside"] = asyncio.run(
            part3(args.rounds, args.clients, work)
        )
        result["one_pooled_exec_vs_outside"] = asyncio.run(part4(args.sequential, work))
        result["load_avg_at_end"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    write_figures(args.out, result)


if __name__ == "__main__":
    main()
