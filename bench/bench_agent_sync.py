"""Figure of issue 14 (sync on the agent's watcher): one changed file in a 10,000-file workspace
reaches the DB through the agent's watcher (inside the sandbox, as its uid) and the sync engine
(over the agent protocol), against a floor measured on the same changes: a bare inotify watcher
(``filesync.watcher.TreeWatcher``, no debounce) in a plain process on the same directory.

Each change is one write into the workspace by a process outside the server (like a program in
the sandbox); both clocks start at that write: the floor's at its line on stdout, ours at the
``file_changed`` event (sent after the DB commit). Medians and p99 of both and of their ratio.

    .venv/bin/python bench/bench_agent_sync.py [--files 10000] [--changes 50] [--debounce-ms 50 0]

The default debounce (``COOLCODING_SYNC_DEBOUNCE_MS``, 50 ms) is most of the figure; the run
with 0 shows the path's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccserver import Server, pct, write_result

FLOOR = """
import asyncio, sys
from coolcoding.filesync.watcher import TreeWatcher
async def main():
    async def seen(batch):
        for p in batch.paths:
            sys.stdout.write(p + "\\n")
        sys.stdout.flush()
    w = TreeWatcher(sys.argv[1], seen, debounce_ms=0, max_delay_ms=0)
    w.start()
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def run(files: int, changes: int, debounce_ms: int) -> dict[str, object]:
    srv = Server(max_workspace_items=str(files + 1000), sync_debounce_ms=str(debounce_ms))
    floor: asyncio.subprocess.Process | None = None
    try:
        sid = srv.new_session()
        async with websockets.connect(
            f"{srv.ws}/api/sessions/{sid}/events", additional_headers=srv.headers
        ) as ev:
            while json.loads(await ev.recv()).get("status") != "running":
                pass
            root = srv.workspace_dir(sid)
            st = root.stat()
            t0 = time.perf_counter()
            for d in range(100):
                (root / f"d{d:02d}").mkdir()
                os.chown(root / f"d{d:02d}", st.st_uid, st.st_gid)
                for i in range(files // 100):
                    (root / f"d{d:02d}" / f"f{i:04d}.txt").write_text(f"{d}-{i}\n")
            seen = 0
            while seen < files:
                e = json.loads(await asyncio.wait_for(ev.recv(), 300))
                seen += e.get("type") == "file_changed" and e.get("item_type") == "file"
            initial = time.perf_counter() - t0
            floor = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLOOR, str(root), stdout=asyncio.subprocess.PIPE
            )
            assert floor.stdout is not None
            assert (await floor.stdout.readline()).strip() == b"ready"
            ours: list[float] = []
            bare: list[float] = []
            for n in range(changes):
                rel = f"d{n % 100:02d}/f{n:04d}.txt"
                t = time.perf_counter()
                (root / rel).write_text(f"changed {n}\n")

                async def floor_sees(rel: str = rel, t: float = t) -> float:
                    assert floor is not None and floor.stdout is not None
                    while (await floor.stdout.readline()).decode().strip() != rel:
                        pass
                    return (time.perf_counter() - t) * 1000

                async def db_has(rel: str = rel, t: float = t) -> float:
                    while True:
                        e = json.loads(await ev.recv())
                        if e.get("type") == "file_changed" and e.get("path") == rel:
                            return (time.perf_counter() - t) * 1000

                async with asyncio.timeout(10):
                    b, o = await asyncio.gather(floor_sees(), db_has())
                bare.append(b)
                ours.append(o)
                await asyncio.sleep(0.1)
        ratios = [o / max(b, 0.001) for o, b in zip(ours, bare, strict=True)]
        return {
            "files": files,
            "changes": changes,
            "debounce_ms": debounce_ms,
            "initial_sync_s": round(initial, 2),
            "agent_path_p50_ms": round(pct(ours, 50), 1),
            "agent_path_p99_ms": round(pct(ours, 99), 1),
            "floor_inotify_p50_ms": round(pct(bare, 50), 2),
            "floor_inotify_p99_ms": round(pct(bare, 99), 2),
            "ratio_p50": round(pct(ratios, 50), 1),
            "ratio_p99": round(pct(ratios, 99), 1),
        }
    finally:
        if floor is not None:
            floor.kill()
            await floor.wait()
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--debounce-ms", type=int, nargs="*", default=[50, 0])
    args = ap.parse_args()
    results = []
    for debounce in args.debounce_ms:
        r = asyncio.run(run(args.files, args.changes, debounce))
        print(f"1 change in {args.files} files to the DB (target < 200 ms), debounce {debounce}")
        for k, v in r.items():
            print(f"  {k:<26}{v:>12}")
        results.append(r)
    write_result("agent_sync", {"runs": results})


if __name__ == "__main__":
    main()
