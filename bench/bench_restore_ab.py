"""Restore of a 10,000-file workspace whose 9,900 files all differ, old vs new code in one
process on one database, interleaved (old, new, new, old / new, old, old, new per round), with
the 10,000-item listing after each restore as the floor; then restores where nothing differs.

The old code is ``services/snapshot_sql.py`` of ``--old-rev`` (read with ``git show``), whose
``capture``, ``keep_unchanged`` and ``materialize`` are swapped into ``services.snapshots`` for
the old runs; everything else (history recording, events) is the same code in both.

    .venv/bin/python bench/bench_restore_ab.py --backend sqlite --rounds 4 [--old-rev 9138983]

Prints one JSON line and appends it to bench/results/history_restore_ab2.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
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

import bench_history as bh
import coolcoding.services.snapshot_sql as new_sql
import coolcoding.services.snapshots as snapmod
from benchhistory import every_file_changed_snapshot, seed_without_history, workspace_files
from benchstats import pct

ROOT = Path(__file__).resolve().parents[1]


def _old_module(rev: str, tmp: Path) -> Any:
    src = subprocess.run(
        ["git", "show", f"{rev}:src/coolcoding/services/snapshot_sql.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp / "old_snapshot_sql.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_snapshot_sql", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def main(backend: str, rounds: int, old_rev: str) -> dict[str, Any]:
    old_sql = _old_module(old_rev, Path(tempfile.mkdtemp(prefix="restore-ab-")))

    takes_version = "version" in inspect.signature(old_sql.keep_unchanged).parameters

    async def old_keep(s: Any, *, session_id: int, snapshot_id: int, version: int) -> None:
        if takes_version:  # revisions from a6c320f on
            await old_sql.keep_unchanged(
                s, session_id=session_id, snapshot_id=snapshot_id, version=version
            )
        else:
            await old_sql.keep_unchanged(s, session_id=session_id, snapshot_id=snapshot_id)

    variants = {
        "old": (old_keep, old_sql.materialize, old_sql.capture),
        "new": (new_sql.keep_unchanged, new_sql.materialize, new_sql.capture),
    }

    def use(name: str) -> None:
        snapmod.keep_unchanged, snapmod.materialize, snapmod.capture = variants[name]  # type: ignore[assignment]

    with tempfile.TemporaryDirectory() as d:
        db, ws, snaps, settings, pg_name = await bh._platform(backend, Path(d))
        try:
            ref = await bh._new_ref(db, f"t{secrets.token_hex(3)}")
            files = workspace_files()
            await seed_without_history(ws, settings, ref, files)
            snap = await snaps.create(ref, "bench")
            ref2 = await bh._new_ref(db, f"t{secrets.token_hex(3)}")
            other = await every_file_changed_snapshot(db, ws, snaps, settings, ref, ref2, files)
            res: dict[str, list[float]] = {
                "old": [],
                "new": [],
                "floor": [],
                "old_same": [],
                "new_same": [],
            }
            target = [other, snap]
            k = 0
            for r in range(rounds):
                order = ["old", "new", "new", "old"] if r % 2 == 0 else ["new", "old", "old", "new"]
                for name in order:
                    use(name)
                    t0 = time.perf_counter()
                    out = await snaps.restore(ref, target[k % 2].id)
                    res[name].append((time.perf_counter() - t0) * 1000)
                    assert out["changed_files"] == 9900, out
                    k += 1
                    t0 = time.perf_counter()
                    items = await ws.list_items(ref)
                    res["floor"].append((time.perf_counter() - t0) * 1000)
                    assert len(items) == 10_000
            # nothing differs: restore the snapshot just taken (the last target)
            for r in range(rounds):
                for name in ["old", "new"] if r % 2 == 0 else ["new", "old"]:
                    use(name)
                    t0 = time.perf_counter()
                    out = await snaps.restore(ref, target[(k - 1) % 2].id)
                    res[name + "_same"].append((time.perf_counter() - t0) * 1000)
                    assert out["changed_files"] == 0, out

            fl = statistics.median(res["floor"])
            out = {
                "backend": backend,
                "rounds": rounds,
                "items": 10000,
                "changed_files": 9900,
                "floor_list_10k_ms_median": round(fl, 1),
            }
            for name in ("old", "new", "old_same", "new_same"):
                v = res[name]
                out[f"restore_{name}_ms_median"] = round(statistics.median(v), 1)
                out[f"restore_{name}_ms_p99"] = round(pct(v, 99), 1)
                out[f"restore_{name}_vs_list"] = round(statistics.median(v) / fl, 2)
            out["new_vs_old_all_changed"] = round(
                statistics.median(res["new"]) / statistics.median(res["old"]), 2
            )
            out["raw_ms"] = {k2: [round(x) for x in v] for k2, v in res.items()}
            out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
            out["old_rev"] = old_rev
            return out
        finally:
            await db.dispose()
            if pg_name:
                await bh._pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def cli() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--old-rev", default="9138983")
    ap.add_argument("--out", default="history_restore_ab2.jsonl")
    args = ap.parse_args()
    out = asyncio.run(main(args.backend, args.rounds, args.old_rev))
    line = json.dumps(out)
    print(line)
    with open(ROOT / "bench" / "results" / args.out, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    cli()
