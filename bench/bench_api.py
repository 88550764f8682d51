"""Figure of issue 2: file save and read through the HTTP API with 50 concurrent clients, and the
listing of a 10,000-item tree, on SQLite and on PostgreSQL.

The server runs as its own process (``coolcoding serve``, one uvicorn worker); the load comes from
bench/httpload.py (open loop at a fixed rate, then closed loop for the maximum).

    .venv/bin/python bench/bench_api.py [--duration 10] [--rate 500] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from httpload import Request, run_load

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get(
    "COOLCODING_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def start_server(
    backend: str, data_dir: Path, port: int
) -> tuple[subprocess.Popen[bytes], str, str | None]:
    pg_name = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
    else:
        pg_name = f"cc_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(f'CREATE DATABASE "{pg_name}"'))
        url = (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + f"/{pg_name}"
        )
    env = {
        **os.environ,
        "COOLCODING_DATA_DIR": str(data_dir),
        "COOLCODING_DATABASE_URL": url,
        "COOLCODING_SANDBOX_CGROUP_PARENT": f"coolcoding-bench-{os.getpid()}",
    }
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/coolcoding"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/health/").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise SystemExit(
            f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    return proc, url, pg_name


async def seed_tree(url: str, session_uuid: str, n: int) -> None:
    """Insert ``n`` items (100 folders of files) straight into the database."""
    import uuid

    from sqlalchemy import insert, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from coolcoding.db.models import CodeSession, WorkspaceItem, utcnow

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        sid = (
            await conn.execute(
                select(CodeSession.id).where(CodeSession.uuid == uuid.UUID(session_uuid))
            )
        ).scalar_one()
        folders = 100
        now = utcnow()
        rows = []
        for f in range(folders):
            rows.append(
                dict(
                    session_id=sid,
                    parent_id=None,
                    name=f"dir{f:03d}",
                    type="folder",
                    full_path=f"dir{f:03d}",
                    size_bytes=0,
                    version=1,
                    is_binary=False,
                    created_at=now,
                    updated_at=now,
                )
            )
        await conn.execute(insert(WorkspaceItem), rows)
        ids = dict(
            (
                await conn.execute(
                    select(WorkspaceItem.full_path, WorkspaceItem.id).where(
                        WorkspaceItem.session_id == sid
                    )
                )
            ).all()
        )
        rows = []
        for i in range(n - folders):
            d = f"dir{i % folders:03d}"
            content = f"print({i})\n".encode()
            rows.append(
                dict(
                    session_id=sid,
                    parent_id=ids[d],
                    name=f"file{i:05d}.py",
                    type="file",
                    full_path=f"{d}/file{i:05d}.py",
                    content=content,
                    size_bytes=len(content),
                    content_hash=secrets.token_hex(32),
                    version=1,
                    is_binary=False,
                    created_at=now,
                    updated_at=now,
                )
            )
        await conn.execute(insert(WorkspaceItem), rows)
    await engine.dispose()


def saves_and_reads(
    c: httpx.Client, connections: int, distinct: bool = False
) -> Callable[[int, int], Request]:
    """Registers a user on ``c`` (its login stays there), 10 sessions and one file per client;
    the load's request maker: half saves of the client's file, half reads of it."""
    r = c.post(
        "/api/users/register",
        json={
            "username": f"bench{secrets.token_hex(3)}",
            "email": f"b{secrets.token_hex(3)}@example.com",
            "password": "benchmark-pass",
        },
    )
    token = r.json()["token"]
    sessions = [c.post("/api/sessions/", json={"name": f"s{i}"}).json()["uuid"] for i in range(10)]
    for conn in range(connections):
        c.post(f"/api/workspace/{sessions[conn % 10]}/file/c{conn}.py", json={"content": "x = 0\n"})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def make(conn: int, i: int) -> Request:
        sid = sessions[conn % 10]
        if i % 2 == 0:  # save (overwrite: the file is this connection's own)
            # Not ``distinct``: every client saves the same contents in the same order (one blob
            # row for all with history on, the worst case of reference counting).
            head = f"# client {conn}\n" if distinct else ""
            body = json.dumps({"content": head + f"x = {i}\n" + "# padding\n" * 20}).encode()
            return Request("POST", f"/api/workspace/{sid}/file/c{conn}.py", body, headers)
        return Request("GET", f"/api/workspace/{sid}/file/c{conn}.py", b"", headers)

    return make


def bench_backend(
    backend: str, rate: float, duration: float, connections: int
) -> dict[str, object]:
    port = 18000 + secrets.randbelow(1000)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, pg_name = start_server(backend, Path(tmp), port)
        try:
            base = f"http://127.0.0.1:{port}"
            c = httpx.Client(base_url=base)
            make = saves_and_reads(c, connections)

            # Warm-up (not measured): opens the server's database pool (a PostgreSQL connect
            # costs ~50 ms under load; a cold pool is a start-up cost, not a steady-state one).
            asyncio.run(
                run_load("127.0.0.1", port, make, connections=connections, duration_s=2, rate=None)
            )
            fixed = asyncio.run(
                run_load(
                    "127.0.0.1", port, make, connections=connections, duration_s=duration, rate=rate
                )
            )
            peak = asyncio.run(
                run_load(
                    "127.0.0.1",
                    port,
                    make,
                    connections=connections,
                    duration_s=duration / 2,
                    rate=None,
                )
            )

            big = c.post("/api/sessions/", json={"name": "big"}).json()["uuid"]
            asyncio.run(seed_tree(url, big, 10_000))
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                r = c.get(f"/api/workspace/{big}/files")
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and len(r.json()["items"]) == 10_000
            times.sort()
            return {
                "backend": backend,
                "fixed_rate": {"target_rps": rate, **fixed.summary()},
                "max_throughput": peak.summary(),
                "list_10k": {
                    "p50_ms": round(statistics.median(times), 1),
                    "p99_ms": round(times[-1], 1),
                    "runs": len(times),
                },
            }
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if pg_name:
                asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args()
    results = [
        bench_backend(b, args.rate, args.duration, args.connections)
        for b in args.backends.split(",")
    ]
    print(
        f"{'backend':9} {'mode':14} {'rps':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non2xx':>7}"
    )
    for r in results:
        for mode in ("fixed_rate", "max_throughput"):
            s = r[mode]  # type: ignore[index]
            print(
                f"{r['backend']:9} {mode:14} {s['rps']:>7} {s['p50_ms']:>8} {s['p90_ms']:>8} {s['p99_ms']:>8} {s['non_2xx']:>7}"
            )
        lt = r["list_10k"]  # type: ignore[index]
        print(
            f"{r['backend']:9} {'list 10k items':14} {'':>7} {lt['p50_ms']:>8} {'':>8} {lt['p99_ms']:>8}"
        )
    out = ROOT / "bench" / "results" / "api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%d %H:%M"),
                "connections": args.connections,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
