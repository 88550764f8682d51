"""Executions per second and p50/p99 latency of hello-world jobs (Python, and C as a precompiled
binary: the judge's compile cache), through the judge and through the HTTP API (?wait=true),
with the sandbox's own overhead measured in the same run: the same program run unsandboxed with
subprocess, and run by ``Sandbox.exec`` in an already-created sandbox.

Usage: .venv/bin/python bench/bench_exec.py [-n 40]   (root: sandboxes need cgroups and uids)
Writes bench/results/exec.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchstats import pct
from coolcoding.app import create_app
from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.settings import Settings

PY = 'print("hello")\n'
C = '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n'
RESULTS = Path(__file__).parent / "results" / "exec.json"


def summary(name: str, lat_ms: list[float], elapsed_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(lat_ms),
        "per_s": round(len(lat_ms) / elapsed_s, 2),
        "p50_ms": round(pct(lat_ms, 50), 2),
        "p99_ms": round(pct(lat_ms, 99), 2),
        **extra,
    }


async def timed(
    fn: Callable[[], Awaitable[None]], n: int, concurrency: int
) -> tuple[list[float], float]:
    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            t = time.perf_counter()
            await fn()
            lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return lat, time.perf_counter() - t0


def settings_for(base: Path, **kw: Any) -> Settings:
    return Settings(
        environment="test",
        data_dir=base,
        sandbox_cgroup_parent=f"cc-bench-{os.getpid()}",
        exec_rate_limit_per_minute=100_000,
        **kw,
    )


async def bench_judge(base: Path, n: int, workers: int) -> list[dict[str, Any]]:
    settings = settings_for(base / "judge")
    runtime = LocalRuntime(settings)
    langs = LanguageRegistry()
    await langs.detect_versions()
    judge = Judge(runtime, langs, settings)
    limits = resolve_limits({}, settings)
    rows = []
    try:
        for lang, name, src in (("python", "main.py", PY), ("c", "main.c", C)):
            job = JudgeJob(lang, {name: src.encode()}, name, limits, cache_scope="bench")
            first = await judge.judge(job)  # C: compiles once; later jobs run the cached binary
            assert first.stdout == b"hello\n", first

            async def run(job: JudgeJob = job) -> None:
                r = await judge.judge(job)
                assert r.verdict == "accepted", r

            for conc in (1, workers):
                lat, el = await timed(run, n, conc)
                rows.append(summary(f"judge {lang} (concurrency {conc})", lat, el))

        # The sandbox's own overhead per exec: one sandbox, the same C binary, N execs, against
        # the same binary started with subprocess outside any sandbox.
        async with runtime.ephemeral({"main.c": C.encode()}, memory_mb=256, pids=64) as box:
            built = await box.exec(
                ["/usr/bin/gcc", "-O2", "-o", "main", "main.c"], cwd="/workspace"
            )
            assert built.exit_code == 0, built
            binary = base / "hello-c"
            binary.write_bytes(await box.read_file("main"))
            binary.chmod(0o755)
            walls: list[float] = []

            async def sandboxed() -> None:
                r = await box.exec(["./main"], cwd="/workspace", limits=None)
                walls.append(r.wall_ms)

            lat_sb, el_sb = await timed(sandboxed, n, 1)

        def plain() -> None:
            subprocess.run([str(binary)], stdout=subprocess.DEVNULL, check=True)

        async def unsandboxed() -> None:
            plain()

        lat_plain, el_plain = await timed(unsandboxed, n, 1)
        overhead = pct(lat_sb, 50) - pct(lat_plain, 50)
        rows.append(summary("C binary, subprocess, no sandbox", lat_plain, el_plain))
        rows.append(
            summary(
                "C binary, Sandbox.exec (sandbox exists)",
                lat_sb,
                el_sb,
                overhead_p50_ms=round(overhead, 2),
                kernel_wall_p50_ms=round(pct(walls, 50), 2),
            )
        )
    finally:
        await runtime.shutdown()
        await runtime.cleanup_orphans()
        for d in set(runtime.host.cgroups.bases.values()):
            if d.is_dir():
                os.rmdir(d)
    return rows


def bench_http(base: Path, n: int, workers: int) -> list[dict[str, Any]]:
    app = create_app(settings_for(base / "http"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            r = c.post(
                "/api/users/register",
                json={"username": "bench", "email": "b@example.com", "password": "benchmark-pass"},
            )
            headers = {"Authorization": f"Bearer {r.json()['token']}"}
        for lang, src in (("python", PY), ("c", C)):
            body = {"language": lang, "source": src}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                assert (
                    c.post("/api/executions?wait=true", json=body).json()["verdict"] == "accepted"
                )

            async def run_all(conc: int, body: dict[str, Any] = body) -> tuple[list[float], float]:
                async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as ac:

                    async def one() -> None:
                        r = await ac.post("/api/executions?wait=true", json=body)
                        assert r.status_code == 200 and r.json()["verdict"] == "accepted", r.text

                    return await timed(one, n, conc)

            for conc in (1, workers * 2):
                lat, el = asyncio.run(run_all(conc))
                rows.append(summary(f"HTTP ?wait=true {lang} (concurrency {conc})", lat, el))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=40)
    args = ap.parse_args()
    workers = os.cpu_count() or 1
    base = Path(tempfile.mkdtemp(prefix="cc-bench-exec-", dir="/tmp"))
    base.chmod(0o711)
    try:
        rows = asyncio.run(bench_judge(base, args.n, workers))
        rows += bench_http(base, args.n, workers)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'scenario':48} {'n':>4} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        extra = f"  overhead p50 {r['overhead_p50_ms']} ms" if "overhead_p50_ms" in r else ""
        print(
            f"{r['name']:48} {r['n']:>4} {r['per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}{extra}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": workers,
                    "platform": platform.platform(),
                    "load1": os.getloadavg()[0],
                },
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
