"""Whole-machine CPU per judged job by command name (issue 10): ``perf record -a -F 499`` while
20 clients send ``?wait=true`` Python hello jobs to one server (SQLite), for this build with a
setting on and off, in interleaved rounds; ms of machine CPU per job for each ``comm``
(bwrap, python3, the server, kworkers...). Everything else running on the machine is in the
samples too: read the per-comm rows of the processes the judge starts, and the ``load`` fields.

Usage (root, perf): .venv/bin/python bench/profile_judge_by_comm.py [-n 200] [--rounds 2]
    [--setting SANDBOX_SPAWN_MOUNT_NS] [--out bench/results/judge_cpu_by_comm.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_judge_throughput import PY, load
from ccserver import Server

RESULTS = Path(__file__).parent / "results" / "judge_cpu_by_comm.json"
HZ = 499


def by_comm(data: Path) -> dict[str, int]:
    """Samples per comm (kworker/... names folded into "kworker")."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--sort", "comm", "--stdio",
                          "-F", "sample,comm", "-g", "none"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    counts: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(.+?)\s*$", line)
        if m and not line.lstrip().startswith("#"):
            name = re.sub(r"^kworker/.*", "kworker", m.group(2))
            counts[name] += int(m.group(1))
    return dict(counts)


def one(srv: Server, n: int, clients: int, work: Path, tag: str) -> dict[str, float]:
    def ok(r: object) -> bool:
        return getattr(r, "status_code", 0) == 200

    url = f"{srv.base}/api/executions?wait=true"
    body = {"language": "python", "source": PY}
    data = work / f"{tag}.data"
    perf = subprocess.Popen(["perf", "record", "-q", "-a", "-F", str(HZ), "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        asyncio.run(load(url, body, srv.headers, n, clients, ok))
    finally:
        perf.send_signal(2)
        perf.wait(60)
    return {c: round(s * 1000 / HZ / n, 3) for c, s in by_comm(data).items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--setting", default="SANDBOX_SPAWN_MOUNT_NS")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-bycomm-"))
    load_start = os.getloadavg()[0]
    servers = {
        "on": Server(EXEC_RATE_LIMIT_PER_MINUTE="1000000", **{args.setting: "true"}),
        "off": Server(EXEC_RATE_LIMIT_PER_MINUTE="1000000", **{args.setting: "false"}),
    }
    rows: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    try:
        for name, srv in servers.items():  # warm-up: pools full, DB pages read
            one(srv, 40, args.clients, work, f"warm-{name}")
        for r in range(args.rounds):
            for name in ("on", "off") if r % 2 == 0 else ("off", "on"):
                rows[name].append(one(servers[name], args.n, args.clients, work, f"{name}{r}"))
    finally:
        for srv in servers.values():
            srv.stop()
    comms = sorted(
        {c for rs in rows.values() for row in rs for c in row},
        key=lambda c: -statistics.median(row.get(c, 0) for row in rows["off"]),
    )
    table = {
        c: {k: round(statistics.median(row.get(c, 0.0) for row in rows[k]), 2) for k in rows}
        for c in comms
    }  # fmt: skip
    print(f"{'comm':24} {'on ms/job':>10} {'off ms/job':>10}")
    for c in comms[:25]:
        print(f"{c:24} {table[c]['on']:10.2f} {table[c]['off']:10.2f}")
    total = {k: round(sum(sum(row.values()) for row in rows[k]) / len(rows[k]), 2) for k in rows}
    print(f"{'all':24} {total['on']:10.2f} {total['off']:10.2f}")
    out = {
        "what": "machine CPU per judged Python hello job by comm (perf record -a -F 499)",
        "setting": args.setting,
        "n": args.n,
        "rounds": args.rounds,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "total_ms_per_job": total,
        "ms_per_job_by_comm_median": table,
        "rounds_raw": rows,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
