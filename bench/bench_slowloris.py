"""Health latency of a normal client during a 20,000-socket slowloris vs without, same run.

    .venv/bin/python bench/bench_slowloris.py [--sockets 20000] [--seconds 20] [--rounds 2]

A real ``coolcoding serve`` (SQLite, default limits; the open-file limit of this machine, 20,000
here) is attacked by separate processes (10,000 sockets each) holding ``--sockets`` connections that send a partial request
header and nothing more, re-opening each one the server closes or refuses after a random 0..15 s
(``--reconnect-s``; 1 makes it a connection flood). Two attacks:

- ``cap``: every socket from 127.0.0.1: the per-address cap (max_connections_per_ip) refuses all
  but 256 of them;
- ``timeout``: the sockets spread over 100 source addresses (127.0.x.y, 200 each, under the cap):
  the header timeout closes them, the total connection cap keeps file descriptors for the rest.

Meanwhile the main process GETs /api/health/ from 127.0.0.2 at 20 requests/s, a new connection
each time. Phases (baseline, cap, baseline, timeout, ...) are interleaved; for each kind: median,
p99 and the share of requests that failed (refused or no answer within 10 s), and the p99 ratio
against the baseline measured in the same run. Results go to bench/results/slowloris.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from ccserver import Server

PARTIAL = b"GET /api/health/ HTTP/1.1\r\nHost: bench\r\nX-Slow: "


PER_PROCESS = 10_000  # attacker sockets per process (under this machine's hard limit of 20,000)


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def attack(port: int, sockets: int, sources: list[str], reconnect_s: float) -> None:
    """Hold ``sockets`` partial-header connections until killed; re-open any that end after a
    random 0..``reconnect_s`` seconds."""
    per_source = sockets // len(sources)
    opened = [0]

    async def hold(source: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
                writer.write(PARTIAL)
                opened[0] += 1
                await reader.read()  # until the server closes or refuses (503 + close)
                writer.close()
            except OSError:
                await asyncio.sleep(0.5)
            await asyncio.sleep(random.uniform(0, reconnect_s))

    tasks = [asyncio.create_task(hold(s)) for s in sources for _ in range(per_source)]
    await asyncio.gather(*tasks)


def probe(port: int, seconds: float) -> tuple[list[float], int]:
    """GET /api/health/ from 127.0.0.2 at 20/s for ``seconds``: latencies (ms) and failures."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    limits = httpx.Limits(max_keepalive_connections=0)
    lat, failed = [], 0
    with httpx.Client(transport=transport, limits=limits, timeout=10) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                ok = c.get(f"http://127.0.0.1:{port}/api/health/").status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                failed += 1
            time.sleep(max(0.0, 0.05 - (time.perf_counter() - t0)))
    return lat, failed


def open_connections(pid: int) -> int:
    """Sockets the server process holds open (its fd table)."""
    fds = Path(f"/proc/{pid}/fd")
    n = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            n += fd.readlink().name.startswith("socket:")
    return n


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--reconnect-s",
        type=float,
        default=15,
        help="a closed or refused socket is re-opened after a random 0..this many seconds "
        "(slowloris.py re-creates its dead sockets every 15 s); 1 = a connection flood",
    )
    ap.add_argument("--attack", help=argparse.SUPPRESS)  # internal: the attacker process
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attack:
        raise_nofile()
        if args.attack == "cap":
            sources = ["127.0.0.1"]
        else:  # 200 sockets per address, a disjoint set of addresses per process
            n = args.sockets // 200
            sources = [
                f"127.0.{1 + (args.part * n + i) // 250}.{1 + (args.part * n + i) % 250}"
                for i in range(n)
            ]
        asyncio.run(attack(args.port, args.sockets, sources, args.reconnect_s))
        return

    srv = Server()  # started with this machine's open-file limit, which it raises to the hard one
    server_limit = Path(f"/proc/{srv.proc.pid}/limits").read_text()
    nofile = next(line for line in server_limit.splitlines() if "open files" in line)
    results: dict[str, dict[str, list[float] | int]] = {}
    try:
        for _ in range(args.rounds):
            for kind in ("baseline", "cap", "baseline", "timeout"):
                attackers = []
                if kind != "baseline":
                    for part in range((args.sockets + PER_PROCESS - 1) // PER_PROCESS):
                        n = min(PER_PROCESS, args.sockets - part * PER_PROCESS)
                        cmd = [sys.executable, __file__, "--attack", kind, "--port", str(srv.port)]
                        cmd += ["--sockets", str(n), "--part", str(part)]
                        cmd += ["--reconnect-s", str(args.reconnect_s)]
                        attackers.append(subprocess.Popen(cmd))
                    time.sleep(10)  # let the attackers open their sockets
                    held = open_connections(srv.proc.pid)
                lat, failed = probe(srv.port, args.seconds)
                for attacker in attackers:
                    attacker.kill()
                    attacker.wait()
                if attackers:
                    time.sleep(3)
                    print(kind, "server-side connections while attacked:", held, flush=True)
                r = results.setdefault(kind, {"lat": [], "failed": 0, "n": 0})
                r["lat"] += lat  # type: ignore[operator]
                r["failed"] += failed  # type: ignore[operator]
                r["n"] += len(lat) + failed  # type: ignore[operator]
                print(kind, f"p99 {p99(lat):.1f} ms", f"failed {failed}", flush=True)
    finally:
        srv.stop()
    base_p99 = p99(results["baseline"]["lat"])  # type: ignore[arg-type]
    summary = {}
    for kind, r in results.items():
        lat: list[float] = r["lat"]  # type: ignore[assignment]
        summary[kind] = {
            "requests": r["n"],
            "failed": r["failed"],
            "p50_ms": round(statistics.median(lat), 2) if lat else None,
            "p99_ms": round(p99(lat), 2),
            "p99_vs_baseline": round(p99(lat) / base_p99, 2),
        }
    out = {
        "sockets": args.sockets,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "reconnect_s": args.reconnect_s,
        "server_open_files": nofile,
        "results": summary,
    }
    print(json.dumps(out, indent=2))
    suffix = "" if args.reconnect_s == 15 else f"_reconnect{args.reconnect_s:g}s"
    dest = Path(__file__).parent / "results" / f"slowloris{suffix}.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
