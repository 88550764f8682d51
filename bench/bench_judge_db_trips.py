"""Database round trips per judged ``?wait=true`` job (issue 10): ``coolcoding serve`` runs with
SQLAlchemy engine events counting every statement (by its first words), commit and rollback;
the counters are cleared after a warm-up, then ``-n`` Python hello jobs from 20 clients run.

Usage: .venv/bin/python bench/bench_judge_db_trips.py [-n 100] [--root CHECKOUT]
(root; sandboxes need cgroups and uids). Prints per-job counts as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_judge_throughput import PY, load
from ccserver import ROOT, Server

WRAPPER = """#!{python}
import collections, json, os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
counts = collections.Counter()
@event.listens_for(Engine, "before_cursor_execute")
def _stmt(conn, cursor, statement, params, context, executemany):
    counts[" ".join(statement.split()[:3])[:60]] += 1
@event.listens_for(Engine, "commit")
def _commit(conn):
    counts["COMMIT"] += 1
@event.listens_for(Engine, "rollback")
def _rollback(conn):
    counts["ROLLBACK"] += 1
try:  # Database.write's one-hop (SQLite) and raw asyncpg writes: no cursor events
    from coolcoding.db import engine as _engine
    _init = _engine.Database.__init__
    def _init_counting(self, *a, **k):
        _init(self, *a, **k)
        self.write_listeners.append(
            lambda sql: counts.update([" ".join(sql.split()[:3])[:60] + " (one hop)"]))
    _engine.Database.__init__ = _init_counting
except AttributeError:  # an older checkout (--root) without them
    pass
def _stop(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, _stop)
signal.signal(signal.SIGUSR1, lambda *_: counts.clear())
from coolcoding.cli import main
try:
    main()
except SystemExit:
    pass
finally:
    with open(os.environ["TRIPS_OUT"], "w") as f:
        json.dump(counts, f)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose .venv runs it")
    args = ap.parse_args()
    fake = Path(tempfile.mkdtemp(prefix="cc-trips-"))
    (fake / ".venv/bin").mkdir(parents=True)
    script = fake / ".venv/bin/coolcoding"
    script.write_text(WRAPPER.format(python=args.root.resolve() / ".venv/bin/python"))
    script.chmod(0o755)
    out = fake / "trips.json"
    os.environ["TRIPS_OUT"] = str(out)
    srv = Server(fake, EXEC_RATE_LIMIT_PER_MINUTE="1000000")
    body = {"language": "python", "source": PY}
    url = f"{srv.base}/api/executions?wait=true"

    def ok(r: httpx.Response) -> bool:
        return r.status_code == 200 and r.json()["verdict"] == "accepted"

    try:
        asyncio.run(load(url, body, srv.headers, 10, 5, ok))
        os.kill(srv.proc.pid, signal.SIGUSR1)
        time.sleep(0.5)
        asyncio.run(load(url, body, srv.headers, args.n, 20, ok))
    finally:
        srv.stop()
        shutil.rmtree(srv.tmp, ignore_errors=True)
    counts = json.loads(out.read_text())
    shutil.rmtree(fake, ignore_errors=True)
    per_job = {k: round(v / args.n, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
    print(json.dumps({"root": str(args.root), "n": args.n, "per_job": per_job,
                      "total_per_job": round(sum(counts.values()) / args.n, 2)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
