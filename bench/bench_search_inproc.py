"""Search in-process (no HTTP), this tree's services/search.py against an earlier revision's, on
the same 10,000-file workspace of bench_ide.py, interleaved (before, after, before, ...), both
answers checked equal first:

    .venv/bin/python bench/bench_search_inproc.py --backend sqlite --before-rev 7bbd292
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_ide import ROOT, Target, pct, seed, source_text
from coolcoding.db.engine import Database
from coolcoding.services.search import SearchQuery, SearchService
from coolcoding.services.workspace_types import WorkspaceRef
from coolcoding.settings import Settings

QUERIES: list[tuple[str, str, dict[str, bool]]] = [
    ("common word, capped", "response", {}),
    ("common word, whole word, capped", "response", {"whole_word": True}),
    ("literal, 1% of files", "special_token_x", {}),
    ("case + whole word", "Needle_Marker_7", {"case_sensitive": True, "whole_word": True}),
    ("rare literal (10 files)", "needle_marker_7", {}),
    ("stress: common trigrams, 40% of files", "urn res", {}),
    ("stress: two letters, no match", "qz", {}),
    ("stress: regex without a literal", "respo|handl", {"regex": True}),
]


def _old_module(rev: str) -> Any:
    source = subprocess.run(
        ["git", "show", f"{rev}:src/coolcoding/services/search.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "search_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("search_before", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["search_before"] = mod
    spec.loader.exec_module(mod)
    return mod


def _key(result: Any) -> list[Any]:
    return [(f.path, [(m.line, m.text, m.ranges) for m in f.matches]) for f in result.files]


async def _measure(
    url: str, session_uuid: str, old: Any, rounds: int, only: list[str]
) -> dict[str, Any]:
    from sqlalchemy import select

    from coolcoding.db.models import CodeSession

    # One page as large as a search may return: the unpaged answer an older revision gives.
    settings = Settings(database_url=url, search_page_results=2000)
    db = Database(settings)
    async with db.engine.connect() as c:
        sid = (
            await c.execute(
                select(CodeSession.id).where(CodeSession.uuid == uuid.UUID(session_uuid))
            )
        ).scalar_one()
    ref = WorkspaceRef(sid, session_uuid)
    after, before = SearchService(db, settings), old.SearchService(db, settings)
    out: dict[str, Any] = {}
    for name, q, kw in QUERIES:
        if only and not any(o in name for o in only):
            continue
        a = await after.search(ref, SearchQuery(q, **kw))
        b = await before.search(ref, old.SearchQuery(q, **kw))
        assert _key(a) == _key(b) and a.match_count == b.match_count, name
        tb: list[float] = []
        ta: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await before.search(ref, old.SearchQuery(q, **kw))
            tb.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await after.search(ref, SearchQuery(q, **kw))
            ta.append((time.perf_counter() - t0) * 1000)
        out[name] = {
            "matches": a.match_count,
            "before_p50_ms": pct(tb, 50),
            "before_p99_ms": pct(tb, 99),
            "after_p50_ms": pct(ta, 50),
            "after_p99_ms": pct(ta, 99),
            "p50_after_vs_before": round(statistics.median(ta) / statistics.median(tb), 2),
        }
        print(name, out[name], flush=True)
    await db.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite")
    ap.add_argument("--before-rev", required=True)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--out", default="search_inproc.json", help="file name in bench/results")
    ap.add_argument("--queries", default="", help="comma-separated parts of query names to run")
    args = ap.parse_args()
    old = _old_module(args.before_rev)
    rng = random.Random(13)
    data = []
    for i in range(10_000):
        marker = ""
        if i % 1000 == 7:
            marker = "needle_marker_7 = True"
        elif i % 100 == 3:
            marker = f"special_token_x{i % 10} = {i}"
        data.append(
            (
                f"dir{i % 100:03d}/file{i:05d}.py",
                source_text(rng, rng.randint(500, 3000), marker),
                False,
            )
        )
    t = Target(args.backend)
    try:
        asyncio.run(seed(t.url, t.sid, data))
        load_before = os.getloadavg()
        only = [o for o in args.queries.split(",") if o]
        queries = asyncio.run(_measure(t.url, t.sid, old, args.rounds, only))
        load_after = os.getloadavg()
    finally:
        t.close()
    out = ROOT / "bench" / "results" / args.out
    merged: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    merged[args.backend] = {
        "before_rev": args.before_rev,
        "rounds": args.rounds,
        "load_average": [round(x, 1) for x in (*load_before, *load_after)],
        "queries": queries,
    }
    out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
