"""The SQLite walk of the phrase with common trigrams (``urn res``), statement variants timed
with the standard library's sqlite3 (no aiosqlite, no SQLAlchemy), in memory, 10,000 files of
bench_ide.py's generator, interleaved (issue 13): the current walk
(``SQLITE_WALK_LIKE_BODIES``' predicate), the walk without any LIKE, one LIKE only, and
``instr(lower(...))`` instead of LIKE. Prints the p50 per variant::

    .venv/bin/python bench/search_phrase_walk_sqlite_variants.py
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ide import source_text

ALTS = json.dumps(["%urn res%", "%urn re\u017f%"])
TAIL = (
    " OR (size_bytes > 8192 AND instr(content, X'00') > 0) THEN content END FROM t "
    "WHERE session_id = 1 AND full_path > :last ORDER BY full_path LIMIT :page"
)
HEAD = "SELECT id, full_path, CASE WHEN "
VARIANTS = {
    "current": HEAD + "(CAST(content AS TEXT) LIKE :pattern AND EXISTS (SELECT 1 FROM "
    "json_each(:alts) WHERE CAST(t.content AS TEXT) LIKE value))" + TAIL,
    "no_like": HEAD + "0" + TAIL,
    "one_like": HEAD + "CAST(content AS TEXT) LIKE :pattern" + TAIL,
    "instr_lower": HEAD + "(instr(lower(CAST(content AS TEXT)), 'urn res') > 0 OR "
    "instr(lower(CAST(content AS TEXT)), 'urn re\u017f') > 0)" + TAIL,
}
PAGES = [256, 512, 1024, 1024, 1024]


def walk(db: sqlite3.Connection, sql: str) -> tuple[float, int]:
    last, m = "", 0
    t0 = time.perf_counter()
    for p in PAGES:
        params = {"pattern": "%urn re%", "alts": ALTS, "last": last, "page": p}
        rows = db.execute(sql, params).fetchall()
        last = rows[-1][1]
        m += sum(1 for r in rows if r[2])
    return (time.perf_counter() - t0) * 1000, m


def main() -> None:
    rng = random.Random(13)
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, session_id INT, full_path TEXT, content BLOB, "
        "size_bytes INT)"
    )
    db.execute("CREATE INDEX ix ON t (session_id, full_path)")
    for i in range(10_000):
        b = source_text(rng, rng.randint(500, 3000), "")
        db.execute(
            "INSERT INTO t (session_id, full_path, content, size_bytes) VALUES (1, ?, ?, ?)",
            (f"dir{i % 100:03d}/file{i:05d}.py", b, len(b)),
        )
    res: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for k, sql in VARIANTS.items():
        print(k, "(ms, bodies)", walk(db, sql))
    for _ in range(15):
        for k, sql in VARIANTS.items():
            res[k].append(walk(db, sql)[0])
    for k, v in res.items():
        print(k, "p50", round(statistics.median(v), 1))


if __name__ == "__main__":
    main()
