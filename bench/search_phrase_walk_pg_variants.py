"""The PostgreSQL walk of the phrase with common trigrams (``urn res``), statement variants timed
from the client, interleaved, on the 10,000-file workspace of bench_search_inproc.py (issue 13):
the current walk (``PG_WALK_LIKE_BODIES``), a prototype with ``full_path`` copied into
``workspace_search`` (index on ``(session_id, full_path)``: one ordered scan, the item looked up
only for the rows that may match), the current walk without bodies, a walk without the index
lookup and LIKE, ``strpos`` instead of LIKE, ``LIKE '%urn re%'`` before the exact alternatives, and
that LIKE alone (inexact: the cost of one scan). Prints p50/max per variant (no JSON written)::

    .venv/bin/python bench/search_phrase_walk_pg_variants.py
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from sqlalchemy import select, text

from bench_ide import Target, seed, source_text
from coolcoding.db.engine import Database
from coolcoding.services import search as S
from coolcoding.settings import Settings

OLD = S.PG_WALK_LIKE_BODIES
PATH_COLUMN = text(
    "SELECT s.item_id, s.full_path, CASE WHEN s.body LIKE ANY(:alts) THEN "
    "(SELECT i.content FROM workspace_items i WHERE i.id = s.item_id) END FROM workspace_search s "
    "WHERE s.session_id = :sid AND s.full_path > :last ORDER BY s.full_path LIMIT :page"
)
NO_BODIES = text(OLD.text.replace("THEN w.content END", "THEN 1 END"))
PLAIN = text(
    "SELECT id, full_path, 1 FROM workspace_items WHERE session_id = :sid AND full_path > :last "
    "AND type = 'file' AND NOT is_binary AND content IS NOT NULL "
    "AND CAST(:alts AS text[]) IS NOT NULL ORDER BY full_path LIMIT :page"
)
STRPOS = text(
    OLD.text.replace(
        "s.body LIKE ANY(:alts)",
        "(strpos(s.body, 'urn res') > 0 OR strpos(s.body, 'urn re\\u017f') > 0 "
        "OR CAST(:alts AS text[]) IS NULL)",
    )
)
PREFILTER = text(
    OLD.text.replace("s.body LIKE ANY(:alts)", "s.body LIKE :pattern AND s.body LIKE ANY(:alts)")
)
ONE_LIKE = text(
    OLD.text.replace(
        "s.body LIKE ANY(:alts)", "s.body LIKE :pattern AND CAST(:alts AS text[]) IS NOT NULL"
    )
)
VARIANTS = {
    "current": OLD,
    "path_column": PATH_COLUMN,
    "current_no_bodies": NO_BODIES,
    "walk_without_lookup": PLAIN,
    "strpos": STRPOS,
    "prefilter_like_pattern": PREFILTER,
    "one_like_inexact": ONE_LIKE,
}
PAGES = [256, 512, 1024, 1024, 1024]  # the pages the search takes for this phrase


async def walk(conn: Any, stmt: Any, sid: int, alts: list[str]) -> tuple[float, int, int]:
    last, n, m = "", 0, 0
    t0 = time.perf_counter()
    for p in PAGES:
        params = {"sid": sid, "last": last, "page": p, "alts": alts, "pattern": "%urn re%"}
        rows = (await conn.execute(stmt, params)).all()
        last = rows[-1][1]
        n += len(rows)
        m += sum(1 for r in rows if r[2])
    return (time.perf_counter() - t0) * 1000, n, m


async def main(t: Target, rounds: int) -> None:
    from coolcoding.db.models import CodeSession

    settings = Settings(database_url=t.url)
    db = Database(settings)
    async with db.engine.connect() as c:
        sid = (
            await c.execute(select(CodeSession.id).where(CodeSession.uuid == uuid.UUID(t.sid)))
        ).scalar_one()
        await c.execute(text("ALTER TABLE workspace_search ADD COLUMN full_path text"))
        await c.execute(
            text(
                "UPDATE workspace_search s SET full_path = i.full_path "
                "FROM workspace_items i WHERE i.id = s.item_id"
            )
        )
        await c.execute(text("CREATE INDEX ix_ws_path ON workspace_search (session_id, full_path)"))
        await c.execute(text("ANALYZE workspace_search"))
        await c.execute(text("ANALYZE workspace_items"))
        for col, table in (("body", "workspace_search"), ("content", "workspace_items")):
            stats = f"SELECT pg_column_compression({col}), count(*), avg(octet_length({col}))"
            print(table, (await c.execute(text(f"{stats} FROM {table} GROUP BY 1"))).all())
        await c.commit()
    alts = S.like_alternatives("urn res")
    assert alts is not None
    res: dict[str, list[float]] = {k: [] for k in VARIANTS}
    async with db.engine.connect() as c:
        await c.execute(S.CUSTOM_PLAN)
        for k, stmt in VARIANTS.items():
            print(k, "(ms, rows, bodies)", await walk(c, stmt, sid, alts))
        for _ in range(rounds):
            for k, stmt in VARIANTS.items():
                res[k].append((await walk(c, stmt, sid, alts))[0])
    for k, v in res.items():
        print(k, "p50", round(statistics.median(v), 1), "max", round(max(v), 1))
    await db.dispose()


if __name__ == "__main__":
    rng = random.Random(13)
    data = []
    for i in range(10_000):
        marker = ""
        if i % 1000 == 7:
            marker = "needle_marker_7 = True"
        elif i % 100 == 3:
            marker = f"special_token_x{i % 10} = {i}"
        body = source_text(rng, rng.randint(500, 3000), marker)
        data.append((f"dir{i % 100:03d}/file{i:05d}.py", body, False))
    target = Target("postgres")
    try:
        asyncio.run(seed(target.url, target.sid, data))
        print("load", os.getloadavg())
        asyncio.run(main(target, 15))
        print("load", os.getloadavg())
    finally:
        target.close()
