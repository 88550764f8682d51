"""Where a 10,000-file restore's time goes, per SQL statement (issue 9): the workspace of
``bench_history.py``'s ``snapshot_10k``, restores of the snapshot just taken (nothing differs)
and alternating between two snapshots whose 9,900 files all differ, each statement timed through
SQLAlchemy's cursor events; the sum per statement over the restores, slowest first.

    .venv/bin/python bench/bench_restore_profile.py --backend sqlite [--runs 3]

Prints a table per variant; no result file (a diagnostic, not a figure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import event

import bench_history as bh
from benchhistory import every_file_changed_snapshot, seed_without_history, workspace_files


async def _hot_updates(db: Any) -> str:
    """PostgreSQL: the workspace rows' updates so far, and how many of them were HOT (in place
    on their page, no index entry written), once the statistics are flushed."""
    from sqlalchemy import text

    await asyncio.sleep(1.2)  # the other connections' statistics reach the shared view
    async with db.read() as conn:
        upd, hot = (
            await conn.execute(
                text(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                    " WHERE relname = 'workspace_items'"
                )
            )
        ).one()
    return f"; workspace_items updates so far {upd}, HOT {hot}"


async def main(backend: str, runs: int, keep: bool = False) -> None:
    with tempfile.TemporaryDirectory() as d:
        db, ws, snaps, settings, pg_name = await bh._platform(backend, Path(d))
        timings: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)

        def before(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
            conn.info.setdefault("t0", []).append(time.perf_counter())

        def after(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
            t0 = conn.info["t0"].pop()
            key = " ".join(stmt.split())[:150]
            timings[key] += (time.perf_counter() - t0) * 1000
            counts[key] += 1

        event.listen(db.engine.sync_engine, "before_cursor_execute", before)
        event.listen(db.engine.sync_engine, "after_cursor_execute", after)
        try:
            ref = await bh._new_ref(db, f"t{secrets.token_hex(3)}")
            files = workspace_files()
            await seed_without_history(ws, settings, ref, files)
            snap = await snaps.create(ref, "bench")
            ref2 = await bh._new_ref(db, f"t{secrets.token_hex(3)}")
            other = await every_file_changed_snapshot(db, ws, snaps, settings, ref, ref2, files)
            for variant, targets in (
                ("nothing differs", [snap] * runs),
                ("every file differs", [other, snap] * runs),
            ):
                timings.clear()
                counts.clear()
                total = []
                for target in targets:
                    t0 = time.perf_counter()
                    await snaps.restore(ref, target.id)
                    total.append((time.perf_counter() - t0) * 1000)
                    # A refresh left for after the commit: done before the next restore (its
                    # statements are counted with the restore's).
                    await snaps.search_refreshed()
                n = len(targets)
                hot = await _hot_updates(db) if backend == "postgres" else ""
                print(
                    f"\n== {backend}, {variant}: {n} restores, "
                    f"ms each: {[round(x) for x in total]}, load {os.getloadavg()[0]:.1f}"
                )
                accounted = sum(timings.values()) / n
                print(f"   SQL per restore {accounted:.0f} ms of {sum(total) / n:.0f} ms{hot}")
                for key, ms in sorted(timings.items(), key=lambda kv: -kv[1])[:18]:
                    print(f"{ms / n:8.1f} ms  x{counts[key] // n:<3} {key}")
        finally:
            await db.dispose()
            if pg_name and keep:
                print(f"kept database {pg_name}")
            elif pg_name:
                await bh._pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = ap.parse_args()
    asyncio.run(main(args.backend, args.runs, args.keep))
