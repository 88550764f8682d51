"""Figures of issue 3 (sync, memory): (1) one changed file in a 10,000-file workspace reaches the
DB (p50/p99 over 50 changes; the change is written into the workspace directory by a process
outside the server, like a program in the sandbox; "reached" = the ``file_changed`` event, sent
after the DB commit); (2) server memory per idle session with 100 sessions, each with an open
terminal: server RSS delta / 100, and the sandbox processes' RSS separately.

    .venv/bin/python bench/bench_sync.py [--files 10000] [--changes 50] [--sessions 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccserver import Server, descendants, pct, rss_kb, write_result


async def sync_latency(files: int, changes: int) -> dict[str, float]:
    srv = Server(max_workspace_items=str(files + 1000))
    try:
        sid = srv.new_session()
        async with websockets.connect(
            f"{srv.ws}/api/sessions/{sid}/events", additional_headers=srv.headers
        ) as ev:
            while json.loads(await ev.recv()).get("status") != "running":
                pass
            root = srv.workspace_dir(sid)
            t0 = time.perf_counter()
            for d in range(100):
                (root / f"d{d:02d}").mkdir()
                for i in range(files // 100):
                    (root / f"d{d:02d}" / f"f{i:04d}.txt").write_text(f"{d}-{i}\n")
            seen = 0
            while seen < files:
                e = json.loads(await asyncio.wait_for(ev.recv(), 120))
                seen += e.get("type") == "file_changed" and e.get("item_type") == "file"
            initial = time.perf_counter() - t0
            lat = []
            for n in range(changes):
                path = root / f"d{n % 100:02d}" / f"f{n:04d}.txt"
                t = time.perf_counter()
                path.write_text(f"changed {n}\n")
                while True:
                    e = json.loads(await asyncio.wait_for(ev.recv(), 10))
                    if e.get("type") == "file_changed" and e["path"].endswith(f"f{n:04d}.txt"):
                        break
                lat.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.05)
        return {
            "files": files,
            "initial_sync_s": round(initial, 2),
            "change_p50_ms": round(pct(lat, 50), 1),
            "change_p99_ms": round(pct(lat, 99), 1),
        }
    finally:
        srv.stop()


async def idle_memory(sessions: int) -> dict[str, float]:
    srv = Server()
    try:
        sids = [srv.new_session(f"s{i}") for i in range(sessions)]
        # One terminal first: imports and pools are warm before the baseline.
        warm = srv.new_session("warm")
        async with websockets.connect(
            f"{srv.ws}/api/sessions/{warm}/terminals/t", additional_headers=srv.headers
        ) as w:
            await w.recv()
        await asyncio.sleep(1)
        base = rss_kb(srv.proc.pid)
        conns = []
        for sid in sids:
            ws = await websockets.connect(
                f"{srv.ws}/api/sessions/{sid}/terminals/t", additional_headers=srv.headers
            )
            await ws.recv()
            conns.append(ws)
        await asyncio.sleep(3)
        server_kb = rss_kb(srv.proc.pid)
        kids = descendants(srv.proc.pid)
        kids_kb = sum(rss_kb(p) for p in kids if Path(f"/proc/{p}").exists())
        for ws in conns:
            await ws.close()
        return {
            "sessions": sessions,
            "server_rss_base_mb": round(base / 1024, 1),
            "server_rss_mb": round(server_kb / 1024, 1),
            "server_kb_per_session": round((server_kb - base) / sessions, 1),
            "sandbox_processes": len(kids),
            "sandbox_kb_per_session": round(kids_kb / sessions, 1),
        }
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--sessions", type=int, default=100)
    args = ap.parse_args()
    sync = asyncio.run(sync_latency(args.files, args.changes))
    mem = asyncio.run(idle_memory(args.sessions))
    for name, r in (("sync (target p99 < 200 ms)", sync), ("idle sessions", mem)):
        print(name)
        for k, v in r.items():
            print(f"  {k:<26}{v:>12}")
    write_result("sync", {"sync": sync, "idle_memory": mem})


if __name__ == "__main__":
    main()
