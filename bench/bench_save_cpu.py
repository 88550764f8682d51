"""CPU per save request (issue 9): server and load-generator CPU over a fixed-rate load.

    .venv/bin/python bench/bench_save_cpu.py [--backend postgres] [--rate 200] [--duration 5]
        [--modes off,on] [--rounds 3] [--workers 1] [--out NAME]

A mode is a history mode of ``bench_history.MODES`` with an optional variant of the HTTP
server (``bench_history.SERVER_VARIANTS``): ``off@old`` runs ``--old-src`` (another build's
src/ through PYTHONPATH), ``off@nofast`` this build without the lean file routes; ``off@base`` is history off without the write coalescing and the young-GC
threshold of issue 9 (the server as it was before), ``off@nogc``/``off@nocoalesce`` without one.

The load of ``bench_history.py`` (50 clients, half saves, half reads). For each server (history
off and on, up side by side, rounds interleaved): the server's user+system CPU from
/proc/<pid>/stat (all its worker processes with ``--workers``) over the measured seconds, divided
by the requests served, and the load generator's own CPU (``resource.getrusage``) the same way.
At a rate below saturation this is the CPU cost of one request; the machine's 2 cores bound the
rate one process can serve at ~1000/(server ms per request).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import bench_history
from benchhistory import LoadedServer, start_servers, stop_servers, warm_up
from ccserver import write_result
from httpload import run_load

TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out += _tree(int(c))
    return out


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of ``pid`` and its descendants (living ones)."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def mode_env(backend: str, mode: str) -> dict[str, str]:
    history, _, variant = mode.partition("@")
    return {**bench_history.MODES[backend][history], **bench_history.SERVER_VARIANTS[variant]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="postgres")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default="off,on")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--old-src",
        default=None,
        help="a src/ directory of another build for the modes with the suffix @old (PYTHONPATH)",
    )
    args = ap.parse_args()
    if args.old_src:
        bench_history.SERVER_VARIANTS["old"] = {"PYTHONPATH": str(Path(args.old_src).resolve())}
    modes = args.modes.split(",")
    servers: dict[str, LoadedServer] = {}
    tmp = tempfile.TemporaryDirectory()
    try:
        envs = {mode: mode_env(args.backend, mode) for mode in modes}
        setup = bench_history._setup
        start_servers(servers, args.backend, envs, Path(tmp.name), setup, args.connections)
        warm_up(servers, args.connections, args.rate)
        runs: dict[str, list[dict[str, object]]] = {m: [] for m in modes}
        for rnd in range(args.rounds):
            # Alternate the order so that no mode always runs first (or right after another).
            for mode in modes if rnd % 2 == 0 else modes[::-1]:
                proc, port, _, make = servers[mode]
                s0, g0 = cpu_s(proc.pid), own_cpu_s()
                load0 = os.getloadavg()[0]
                r = asyncio.run(
                    run_load(
                        "127.0.0.1",
                        port,
                        make,
                        connections=args.connections,
                        duration_s=args.duration,
                        rate=args.rate,
                    )
                )
                s1, g1 = cpu_s(proc.pid), own_cpu_s()
                summ = r.summary()
                n = max(1, int(summ["requests"]))
                summ["server_cpu_ms_per_req"] = round((s1 - s0) * 1000 / n, 3)
                summ["generator_cpu_ms_per_req"] = round((g1 - g0) * 1000 / n, 3)
                summ["generator_cpu_share"] = round((g1 - g0) / max(1e-9, (s1 - s0) + (g1 - g0)), 3)
                summ["loadavg_1m"] = load0
                runs[mode].append(summ)
                print(mode, summ, flush=True)
        out: dict[str, object] = {
            "backend": args.backend,
            "rate": args.rate,
            "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
        }
        for mode, rs in runs.items():
            out[mode] = {
                "server_cpu_ms_per_req_median": statistics.median(
                    float(x["server_cpu_ms_per_req"])
                    for x in rs  # type: ignore[arg-type]
                ),
                "generator_cpu_ms_per_req_median": statistics.median(
                    float(x["generator_cpu_ms_per_req"])
                    for x in rs  # type: ignore[arg-type]
                ),
                "p50_ms_median": statistics.median(float(x["p50_ms"]) for x in rs),  # type: ignore[arg-type]
                "p99_ms_median": statistics.median(float(x["p99_ms"]) for x in rs),  # type: ignore[arg-type]
                "runs": rs,
            }
            print(mode, {k: v for k, v in out[mode].items() if k != "runs"})  # type: ignore[union-attr]
        if args.out:
            write_result(args.out, out)
    finally:
        stop_servers(servers)
        tmp.cleanup()
        time.sleep(0)


if __name__ == "__main__":
    main()
