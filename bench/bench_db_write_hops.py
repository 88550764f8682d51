"""CPU of one write statement (an INSERT ... RETURNING id, committed) through ``Database.write``
against the path it replaced (``Database.one_write`` + SQLAlchemy's ``execute``), on SQLite and
PostgreSQL, in interleaved blocks (issue 10, "One hop per SQLite write"). ``thread_hops``:
round trips into aiosqlite's thread (the one-hop writer has its own thread: one per write).

CPU is the whole process's (``time.process_time``: the event loop and every thread, so
aiosqlite's and the one-hop writer's threads count); on PostgreSQL the server's own CPU is not
in it. Thread hops into aiosqlite's thread are counted by wrapping its ``_execute``.

Usage: .venv/bin/python bench/bench_db_write_hops.py [--writes 2000] [--rounds 5]
    [--out bench/results/db_write_hops.json]      (PostgreSQL on 127.0.0.1:5432 for its rows)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, text

from coolcoding.db.engine import Database
from coolcoding.settings import Settings

RESULTS = Path(__file__).parent / "results" / "db_write_hops.json"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PROBE = Table("probe", MetaData(), Column("id", Integer, primary_key=True), Column("v", String))
# A Core statement, as the judge's are (a plain text() takes SQLAlchemy's path on PostgreSQL).
INSERT = insert(PROBE).values(v=bindparam("v")).returning(PROBE.c.id)
HOPS = {"n": 0}


def count_hops() -> None:
    real = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *a: Any, **k: Any) -> Any:
        HOPS["n"] += 1
        return await real(self, fn, *a, **k)

    aiosqlite.Connection._execute = counting  # type: ignore[method-assign]


async def through_sqlalchemy(db: Database) -> None:
    async with db.one_write() as conn:
        (await conn.execute(INSERT, {"v": "x"})).scalar_one()


async def through_write(db: Database) -> None:
    (await db.write(INSERT, {"v": "x"})).scalar_one()


async def block(
    db: Database, fn: Callable[[Database], Awaitable[None]], n: int
) -> dict[str, float]:
    HOPS["n"] = 0
    t0 = time.process_time()
    for _ in range(n):
        await fn(db)
    cpu = time.process_time() - t0
    return {"cpu_ms": cpu * 1000 / n, "hops": HOPS["n"] / n}


async def measure(db: Database, writes: int, rounds: int) -> dict[str, Any]:
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT)")
                           if db.is_sqlite else
                           text("CREATE TABLE probe (id serial PRIMARY KEY, v text)"))  # fmt: skip
    paths = {"SQLAlchemy one_write": through_sqlalchemy, "Database.write": through_write}
    for fn in paths.values():  # warm-up: connections, statement caches
        await block(db, fn, 100)
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
    for i in range(rounds):
        order = list(paths) if i % 2 == 0 else list(reversed(paths))
        for name in order:
            runs[name].append(await block(db, paths[name], writes))
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        cpu = sorted(r["cpu_ms"] for r in rs)
        out[name] = {
            "cpu_ms_per_write_median": round(statistics.median(cpu), 4),
            "cpu_ms_per_write_max_of_rounds": round(cpu[-1], 4),
            "thread_hops_per_write": round(statistics.median(r["hops"] for r in rs), 2),
        }
    paired = [
        a["cpu_ms"] / b["cpu_ms"]
        for a, b in zip(runs["Database.write"], runs["SQLAlchemy one_write"], strict=True)
    ]
    out["ratio_write_vs_sqlalchemy_paired_median"] = round(statistics.median(paired), 3)
    return out


async def main_async(writes: int, rounds: int) -> dict[str, Any]:
    count_hops()
    result: dict[str, Any] = {"writes_per_block": writes, "rounds": rounds}
    data_dir = Path(tempfile.mkdtemp(prefix="cc-bench-hops-"))
    db = Database(Settings(data_dir=data_dir))
    try:
        result["sqlite"] = await measure(db, writes, rounds)
    finally:
        await db.dispose()
    name = f"cc_bench_hops_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        db = Database(Settings(data_dir=data_dir, database_url=url))
        try:
            result["postgres"] = await measure(db, writes, rounds)
        finally:
            await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    result = asyncio.run(main_async(args.writes, args.rounds))
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
