"""CPU per save and per read inside the application (ASGI calls, no HTTP server, no client
library), PostgreSQL, history off: this tree against another build run in a child process with
``PYTHONPATH`` (its ``src``), interleaved.

    .venv/bin/python bench/bench_route_cpu.py --other-src /tmp/old/src [--n 1500] [--rounds 2]

Each run: one user, one session, one 200-byte file; 200 warm-up requests, then ``--n`` saves,
``--n`` reads, ``--n`` alternating; ``time.process_time()`` over each batch divided by the
requests (the process's user+system CPU: the app, SQLAlchemy, asyncpg, the kernel's socket work
to PostgreSQL; not uvicorn's HTTP parsing nor the client's sockets). Prints one JSON line per run
and writes ``results/<out>.json``.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


async def measure(n: int, history: bool) -> dict[str, float]:
    import httpx

    from bench_api import _pg
    from coolcoding.app import create_app
    from coolcoding.settings import Settings

    pg = f"cc_route_{secrets.token_hex(3)}"
    await _pg(f'CREATE DATABASE "{pg}"')
    tmp = tempfile.mkdtemp()
    os.chmod(tmp, 0o755)
    settings = Settings(
        data_dir=Path(tmp),
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg}",
        history_enabled=history,
    )
    app = create_app(settings)
    out: dict[str, float] = {}
    try:
        async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as c:
                r = await c.post(
                    "/api/users/register",
                    json={
                        "username": "u" + secrets.token_hex(3),
                        "email": f"x{secrets.token_hex(3)}@example.com",
                        "password": "benchmark-pass",
                    },
                )
                tok = r.json()["token"]
                h = {"Authorization": f"Bearer {tok}"}
                sid = (await c.post("/api/sessions/", json={"name": "s"}, headers=h)).json()["uuid"]
                await c.post(f"/api/workspace/{sid}/file/c.py", json={"content": "x\n"}, headers=h)
            headers = [
                (b"host", b"127.0.0.1:8000"),
                (b"authorization", f"Bearer {tok}".encode()),
                (b"content-type", b"application/json"),
            ]
            path = f"/api/workspace/{sid}/file/c.py"

            async def call(method: str, body: bytes) -> None:
                scope = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": method,
                    "scheme": "http",
                    "path": path,
                    "raw_path": path.encode(),
                    "query_string": b"",
                    "root_path": "",
                    "headers": [*headers, (b"content-length", str(len(body)).encode())],
                    "client": ("127.0.0.1", 5555),
                    "server": ("127.0.0.1", 8000),
                    "state": {},
                }
                given = False

                async def receive() -> dict[str, Any]:
                    nonlocal given
                    if not given:
                        given = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    await asyncio.sleep(3600)
                    return {"type": "http.disconnect"}

                status: list[int] = []

                async def send(m: dict[str, Any]) -> None:
                    if m["type"] == "http.response.start":
                        status.append(m["status"])

                await app(scope, receive, send)
                assert status and status[0] in (200, 201), status

            async def batch(k: int, kind: str) -> None:
                for i in range(k):
                    if kind == "save" or (kind == "both" and i % 2 == 0):
                        content = f"x = {i}\n" + "# padding\n" * 20
                        await call("POST", json.dumps({"content": content}).encode())
                    else:
                        await call("GET", b"")

            await batch(200, "both")
            for kind in ("save", "read", "both"):
                t0 = time.process_time()
                await batch(n, kind)
                out[f"{kind}_cpu_ms"] = round((time.process_time() - t0) * 1000 / n, 3)
    finally:
        await _pg(f'DROP DATABASE IF EXISTS "{pg}" WITH (FORCE)')
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other-src", required=False, help="src/ of the build to compare with")
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--history", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.n, args.history))))
        return
    builds = {"this": None, "other": args.other_src}
    runs: dict[str, list[dict[str, Any]]] = {"this": [], "other": []}
    for r in range(args.rounds):
        for name in ("this", "other") if r % 2 == 0 else ("other", "this"):
            if name == "other" and not args.other_src:
                continue
            env = dict(os.environ)
            if builds[name]:
                env["PYTHONPATH"] = str(builds[name])
            cmd = [sys.executable, __file__, "--child", "--n", str(args.n)]
            if args.history:
                cmd.append("--history")
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row["loadavg_1m"] = os.getloadavg()[0]
            runs[name].append(row)
            print(name, row, flush=True)
    summary: dict[str, Any] = {"other_src": args.other_src, "n": args.n, "history": args.history}
    for name, rs in runs.items():
        if rs:
            summary[name] = {
                k: statistics.median(float(x[k]) for x in rs)
                for k in ("save_cpu_ms", "read_cpu_ms", "both_cpu_ms")
            }
            summary[name]["runs"] = rs
    if runs["other"]:
        summary["this_vs_other_both"] = round(
            summary["this"]["both_cpu_ms"] / summary["other"]["both_cpu_ms"], 2
        )
    print(json.dumps({k: v for k, v in summary.items()}))
    if args.out:
        from ccserver import write_result

        write_result(args.out, summary)


if __name__ == "__main__":
    main()
