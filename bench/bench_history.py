"""File history (issue 9): save latency with history on vs off, storage of 1,000 versions of a
100 KB file, snapshot and restore of a 10,000-file workspace.

    .venv/bin/python bench/bench_history.py [--rate 500] [--duration 6] [--rounds 3]

1. Two servers on PostgreSQL, history on and off, measured in alternating rounds at a fixed
   rate (``bench_api.py``'s load: 50 clients, half saves, half reads); p50/p99 of each.
2. 1,000 saves of a 100 KB text file, each changing one line (coalescing off, retention 1,000),
   through ``WorkspaceService``; bytes stored in ``content_blobs`` vs the raw 100 MB.
3. A 10,000-file workspace: snapshot, then restore (which snapshots the current state first),
   interleaved with the floor of reading the 10,000 items' listing; medians and maxima.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench_api import _pg, saves_and_reads
from benchhistory import (
    LoadedServer,
    every_file_changed_snapshot,
    seed_without_history,
    start_servers,
    stop_servers,
    warm_up,
    workspace_files,
)
from ccserver import descendants, pct, write_result
from httpload import run_load

# Servers compared in the load phase: history off (the floor), on with the single-statement
# save (PostgreSQL's default), on with the general locked transaction (what a save with history
# did before, and what SQLite does).
MODES = {
    "postgres": {
        "off": {"COOLCODING_HISTORY_ENABLED": "false"},
        "on": {"COOLCODING_HISTORY_ENABLED": "true"},
        "on_general": {
            "COOLCODING_HISTORY_ENABLED": "true",
            "COOLCODING_HISTORY_SINGLE_STATEMENT_SAVE": "false",
        },
        # The single-statement save that does the blob work itself (shared rows, delta), as
        # before the deferred save.
        "on_inline": {
            "COOLCODING_HISTORY_ENABLED": "true",
            "COOLCODING_HISTORY_DEFERRED_SAVE": "false",
        },
    },
    "sqlite": {
        "off": {"COOLCODING_HISTORY_ENABLED": "false"},
        "on": {"COOLCODING_HISTORY_ENABLED": "true"},
    },
}


# The HTTP server as it was before issue 9's CPU work (``base``), or without one of its two changes.
SERVER_VARIANTS = {
    "": {},
    "base": {"COOLCODING_HTTP_COALESCE_WRITES": "false", "COOLCODING_GC_YOUNG_THRESHOLD": "700"},
    "nogc": {"COOLCODING_GC_YOUNG_THRESHOLD": "700"},
    "nocoalesce": {"COOLCODING_HTTP_COALESCE_WRITES": "false"},
    # this build with the file routes through FastAPI (api/fastfiles.py off)
    "nofast": {"COOLCODING_HTTP_FAST_FILE_ROUTES": "false"},
    # this build with the hot statements through SQLAlchemy (db/raw.py off)
    "noraw": {"COOLCODING_DB_RAW_HOT_STATEMENTS": "false"},
}


def save_latency(
    backend: str,
    rate: float,
    duration: float,
    rounds: int,
    connections: int = 50,
    modes: tuple[str, ...] = ("off", "on"),
    workers: tuple[int, ...] = (1,),
    redis_url: str = "",
) -> dict[str, object]:
    """Every mode's server up at once; rounds interleaved (off, on, ... in turn).

    ``workers`` other than ``(1,)``: each mode once per worker count (``serve --workers N``,
    modes named ``<mode>_w<N>``), all of them on ``redis_url`` (which N > 1 needs)."""
    servers: dict[str, LoadedServer] = {}
    tmp = tempfile.TemporaryDirectory()
    try:
        envs = _envs(backend, modes, workers, redis_url)
        start_servers(servers, backend, envs, Path(tmp.name), _setup, connections)
        results: dict[str, list[dict[str, object]]] = {m: [] for m in servers}
        warm_up(servers, connections, rate)  # at the measured rate, not measured
        for _ in range(rounds):
            for mode in servers:
                proc, port, _, make = servers[mode]
                cpu0 = _cpu(proc.pid)
                r = asyncio.run(
                    run_load(
                        "127.0.0.1",
                        port,
                        make,
                        connections=connections,
                        duration_s=duration,
                        rate=rate,
                    )
                )
                cpu1 = _cpu(proc.pid)
                # CPU seconds per wall second during the round: the server (all its workers),
                # this load generator, and the machine's idle share of its cores.
                wall = cpu1[3] - cpu0[3]
                served = max(int(r.summary().get("requests", 0)), 1)
                use = {
                    "server_cores": round((cpu1[0] - cpu0[0]) / wall, 2),
                    "loadgen_cores": round((cpu1[1] - cpu0[1]) / wall, 2),
                    "machine_idle_cores": round((cpu1[2] - cpu0[2]) / wall, 2),
                    # Per request: the server's CPU, and every PostgreSQL process's (the
                    # server's backends, but also anyone else's on this machine meanwhile).
                    "server_cpu_ms_per_req": round((cpu1[0] - cpu0[0]) * 1000 / served, 3),
                    "postgres_cpu_ms_per_req": round((cpu1[4] - cpu0[4]) * 1000 / served, 3),
                }
                results[mode].append({**r.summary(), **use, "loadavg": _loadavg()})
        out: dict[str, object] = {"backend": backend, "rate": rate, "duration_s": duration}
        stats: dict[str, dict[str, Any]] = {}
        for mode, runs in results.items():
            stats[mode] = {
                "server_cpu_ms_per_req_median": statistics.median(
                    float(r["server_cpu_ms_per_req"])  # type: ignore[arg-type]
                    for r in runs
                ),
                "postgres_cpu_ms_per_req_median": statistics.median(
                    float(r["postgres_cpu_ms_per_req"])  # type: ignore[arg-type]
                    for r in runs
                ),
                "p50_ms_median": statistics.median(float(r["p50_ms"]) for r in runs),  # type: ignore[arg-type]
                "p99_ms_median": statistics.median(float(r["p99_ms"]) for r in runs),  # type: ignore[arg-type]
                "p99_ms_max": max(float(r["p99_ms"]) for r in runs),  # type: ignore[arg-type]
                "runs": runs,
            }

        def compare(m: dict[str, Any], floor: str, name: str) -> None:
            """``m``'s medians over ``floor``'s, and per round (the rounds run back to back)."""
            base = stats[floor]
            m[f"p50_vs_{name}"] = round(m["p50_ms_median"] / base["p50_ms_median"], 2)
            m[f"p99_vs_{name}"] = round(m["p99_ms_median"] / base["p99_ms_median"], 2)
            m[f"p99_vs_{name}_per_round"] = [
                round(float(a["p99_ms"]) / float(b["p99_ms"]), 2)
                for a, b in zip(m["runs"], base["runs"], strict=True)
            ]

        for mode, m in stats.items():
            kind, _, w = mode.partition("_w")
            floor = "off" + (f"_w{w}" if w else "")
            if kind != "off" and floor in stats:
                compare(m, floor, "off")
            if "@" not in mode and f"{mode}@old" in stats:
                compare(m, f"{mode}@old", "old")  # this build against --old-src, same mode
            if mode == "on" and "on_inline" in stats:
                compare(m, "on_inline", "inline")  # deferred save against the inline one
            if w and w != "1" and f"{kind}_w1" in stats:
                compare(m, f"{kind}_w1", "1_worker")  # N workers against one, the same mode
        out.update(stats)
        return out
    finally:
        stop_servers(servers)
        tmp.cleanup()


def _envs(
    backend: str, modes: tuple[str, ...], workers: tuple[int, ...], redis_url: str
) -> dict[str, dict[str, str]]:
    """Each server's environment, by its mode's name: ``off``, ``on``... or, with other worker
    counts than 1, ``off_w1``, ``off_w2``, ``on_w1``...; ``off@base`` etc.: a server variant
    (``SERVER_VARIANTS``)."""
    chosen = {m: env for m, env in MODES[backend].items() if m in modes}
    for m in modes:
        if "@" in m:
            history, _, variant = m.partition("@")
            chosen[m] = {**MODES[backend][history], **SERVER_VARIANTS[variant]}
    if workers == (1,):
        return chosen
    extra = {"COOLCODING_REDIS_URL": redis_url, "COOLCODING_REGISTER_RATE_LIMIT": "100000"}
    return {
        f"{m}_w{n}": {**env, **extra, "COOLCODING_WORKERS": str(n)}
        for m, env in chosen.items()
        for n in workers
    }


def _cpu(server_pid: int) -> tuple[float, float, float, float, float]:
    """CPU seconds of the server's process tree and of this process, idle seconds of the
    machine (summed over its cores), the monotonic clock, CPU seconds of every PostgreSQL
    process."""
    tick = os.sysconf("SC_CLK_TCK")
    server = 0
    for pid in [server_pid, *descendants(server_pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        server += int(fields[11]) + int(fields[12])  # utime, stime
    own = resource.getrusage(resource.RUSAGE_SELF)
    idle = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[4])
    pg = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not (proc / "comm").read_text().startswith("postgres"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pg += int(fields[11]) + int(fields[12])
    return server / tick, own.ru_utime + own.ru_stime, idle / tick, time.monotonic(), pg / tick


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


SHARED_CONTENT = True


def _setup(port: int, connections: int):  # type: ignore[no-untyped-def]
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}")
    return saves_and_reads(c, connections, distinct=not SHARED_CONTENT)


async def _platform(backend: str, tmp: Path, **overrides: object):  # type: ignore[no-untyped-def]
    from coolcoding.db.engine import Database
    from coolcoding.db.migrate import upgrade
    from coolcoding.services.history import HistoryRecorder
    from coolcoding.services.snapshots import SnapshotService
    from coolcoding.services.workspace import WorkspaceService
    from coolcoding.settings import Settings

    pg_name = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'h.db'}"
    else:
        pg_name = f"cc_bench_{secrets.token_hex(4)}"
        await _pg(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}"
    settings = Settings(data_dir=tmp, database_url=url, **overrides)  # type: ignore[arg-type]
    db = Database(settings)
    await upgrade(db.engine)
    ws = WorkspaceService(db, settings)
    ws.recorder = HistoryRecorder(settings)
    return db, ws, SnapshotService(db, settings, ws), settings, pg_name


async def _new_ref(db, user: str):  # type: ignore[no-untyped-def]
    from coolcoding.db.models import CodeSession, User
    from coolcoding.services.sessions import ref_of

    async with db.session() as s:
        u = User(username=user, email=f"{user}@example.com", password_hash="x")
        s.add(u)
        await s.flush()
        sess = CodeSession(user_id=u.id, name="bench")
        s.add(sess)
        await s.commit()
    return ref_of(sess)


async def storage_1000(backend: str) -> dict[str, object]:
    from sqlalchemy import text

    with tempfile.TemporaryDirectory() as d:
        db, ws, _snaps, _settings, pg_name = await _platform(
            backend, Path(d), history_coalesce_s=0.0, history_max_versions=1000
        )
        try:
            ref = await _new_ref(db, f"s{secrets.token_hex(3)}")
            rnd = random.Random(9)
            words = [
                "".join(rnd.choice("abcdefghijklmnop") for _ in range(rnd.randint(2, 9)))
                for _ in range(3000)
            ]
            lines = [" ".join(rnd.choice(words) for _ in range(9)) + "\n" for _ in range(1800)]
            assert sum(len(x) for x in lines) > 100_000
            times = []
            raw = 0
            for i in range(1000):
                lines[rnd.randrange(len(lines))] = f"edit {i}: {rnd.random()}\n"
                content = "".join(lines).encode()
                raw += len(content)
                t0 = time.perf_counter()
                await ws.save_file(ref, "big.txt", content)
                times.append((time.perf_counter() - t0) * 1000)
            # The deferred save's versions (PostgreSQL) are stored raw until compacted: what is
            # kept is measured after the background task's work (timed on its own).
            from coolcoding.services.history_deferred import HistoryCompactor

            t0 = time.perf_counter()
            compactor, compacted = HistoryCompactor(db, _settings), 0
            while n := await compactor.compact_once(everything=True):
                compacted += n
            compact_ms = (time.perf_counter() - t0) * 1000
            async with db.session() as s:
                stored, count = (
                    await s.execute(text("SELECT SUM(stored_size), COUNT(*) FROM content_blobs"))
                ).one()
                versions = (
                    await s.execute(text("SELECT COUNT(*) FROM file_versions"))
                ).scalar_one()
            times.sort()
            return {
                "backend": backend,
                "versions": int(versions),
                "blobs": int(count),
                "stored_bytes": int(stored),
                "raw_bytes": raw,
                "ratio_raw_to_stored": round(raw / int(stored), 1),
                "save_p50_ms": round(statistics.median(times), 2),
                "save_p99_ms": round(pct(times, 99), 2),
                "compacted_versions": compacted,
                "compact_ms": round(compact_ms, 1),
            }
        finally:
            await db.dispose()
            if pg_name:
                await _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


async def _restore_timed(
    snaps: Any, ref: Any, snapshot_id: int
) -> tuple[dict[str, Any], float, float]:
    """One restore: its result, its time (ms, what the caller waits for) and the time after it
    until the search-index refresh it left for after its commit is done (ms, 0 when none; not
    part of the restore's time, and waited for so that the next restore does not queue behind
    it). Builds without the deferred refresh (``--src`` of an older tree) have no wait."""
    t0 = time.perf_counter()
    out = await snaps.restore(ref, snapshot_id)
    t1 = time.perf_counter()
    refreshed = getattr(snaps, "search_refreshed", None)
    if refreshed is not None:
        await refreshed()
    return out, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


async def snapshot_10k(backend: str, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        db, ws, snaps, settings, pg_name = await _platform(backend, Path(d))
        try:
            ref = await _new_ref(db, f"t{secrets.token_hex(3)}")
            files = workspace_files()
            await seed_without_history(ws, settings, ref, files)
            snap_ms, restore_ms, floor_ms = [], [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                snap = await snaps.create(ref, "bench")
                snap_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                items = await ws.list_items(ref)
                floor_ms.append((time.perf_counter() - t0) * 1000)
                assert len(items) == 10_000
                out, ms, _ = await _restore_timed(snaps, ref, snap.id)
                restore_ms.append(ms)
                assert out["restored_items"] == 10_000
            # The worst case: restores alternating between two snapshots whose every file
            # differs (each deletes, inserts and versions 9,900 files). The second snapshot is
            # taken in another session with the other contents and handed over.
            ref2 = await _new_ref(db, f"t{secrets.token_hex(3)}")
            other = await every_file_changed_snapshot(db, ws, snaps, settings, ref, ref2, files)
            full_ms, refresh_ms = [], []
            for i in range(runs):
                out, ms, after = await _restore_timed(
                    snaps, ref, other.id if i % 2 == 0 else snap.id
                )
                full_ms.append(ms)
                refresh_ms.append(after)
                assert out["changed_files"] == 9_900, out
                # The listing floor again, between the worst-case rounds.
                t0 = time.perf_counter()
                await ws.list_items(ref)
                floor_ms.append((time.perf_counter() - t0) * 1000)
            fl = statistics.median(floor_ms)
            return {
                "backend": backend,
                "items": 10_000,
                "loadavg": _loadavg(),
                "restore_all_changed_ms_median": round(statistics.median(full_ms), 1),
                "restore_all_changed_ms_max": round(max(full_ms), 1),
                "restore_all_changed_ms_p99": round(pct(full_ms, 99), 1),
                "restore_all_changed_vs_list_ratio": round(statistics.median(full_ms) / fl, 2),
                "restore_all_changed_raw_ms": [round(x) for x in full_ms],
                "index_refresh_after_commit_ms_median": round(statistics.median(refresh_ms), 1),
                "index_refresh_after_commit_ms_max": round(max(refresh_ms), 1),
                "snapshot_ms_median": round(statistics.median(snap_ms), 1),
                "snapshot_ms_max": round(max(snap_ms), 1),
                "restore_ms_median": round(statistics.median(restore_ms), 1),
                "restore_ms_max": round(max(restore_ms), 1),
                "restore_ms_p99": round(pct(restore_ms, 99), 1),
                "restore_raw_ms": [round(x) for x in restore_ms],
                "floor_list_10k_ms_median": round(fl, 1),
                "floor_list_10k_ms_p99": round(pct(floor_ms, 99), 1),
                "snapshot_vs_list_ratio": round(statistics.median(snap_ms) / fl, 2),
                "restore_vs_list_ratio": round(statistics.median(restore_ms) / fl, 2),
            }
        finally:
            await db.dispose()
            if pg_name:
                await _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--only-load", action="store_true")
    ap.add_argument("--skip-storage", action="store_true")
    ap.add_argument("--load-backends", default="postgres,sqlite")
    ap.add_argument(
        "--snapshot-backends",
        default="postgres,sqlite",
        help="backends of the storage and snapshot/restore parts",
    )
    ap.add_argument(
        "--modes",
        default="off,on",
        help="off,on[,on_general]: on_general (PostgreSQL) is the save before the single"
        " statement; at 500 req/s it queues for minutes on this machine",
    )
    ap.add_argument(
        "--workers",
        default="1",
        help="worker counts to compare, e.g. 1,2 (serve --workers N; then every server uses"
        " --redis-url, which N > 1 needs)",
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    ap.add_argument(
        "--old-src",
        default=None,
        help="a src/ directory of another build: modes with the suffix @old run it (PYTHONPATH),"
        " e.g. --modes on,on@old (git archive <rev> src | tar -x -C DIR)",
    )
    ap.add_argument("--out", default=None, help="result name (default history / history_load)")
    ap.add_argument(
        "--distinct-content",
        action="store_true",
        help="each client saves its own contents (default: all the same ones, one hot blob row)",
    )
    args = ap.parse_args()
    if args.old_src:
        SERVER_VARIANTS["old"] = {"PYTHONPATH": str(Path(args.old_src).resolve())}
    global SHARED_CONTENT
    SHARED_CONTENT = not args.distinct_content
    result: dict[str, object] = {}
    for backend in () if args.only_load else args.snapshot_backends.split(","):
        r: dict[str, object] = {}
        if not args.skip_storage:
            result[f"storage_{backend}"] = r = asyncio.run(storage_1000(backend))
        if r:
            print(
                f"1,000 versions of a 100 KB file ({backend}): {r['stored_bytes'] / 1e6:.2f} MB stored "
                f"for {r['raw_bytes'] / 1e6:.0f} MB of content; save p50 {r['save_p50_ms']} ms p99 {r['save_p99_ms']} ms"
            )
        result[f"snapshot_{backend}"] = r = asyncio.run(snapshot_10k(backend, args.runs))
        print(
            f"10,000 files ({backend}): snapshot {r['snapshot_ms_median']} ms (max {r['snapshot_ms_max']}), "
            f"restore {r['restore_ms_median']} ms (max {r['restore_ms_max']}), "
            f"restore changing every file {r['restore_all_changed_ms_median']} ms "
            f"(max {r['restore_all_changed_ms_max']}, index refreshed "
            f"{r['index_refresh_after_commit_ms_median']} ms after it); "
            f"list floor {r['floor_list_10k_ms_median']} ms"
        )
    if not args.skip_load:
        for backend in args.load_backends.split(","):
            modes = tuple(m for m in args.modes.split(",") if m.partition("@")[0] in MODES[backend])
            workers = tuple(int(w) for w in args.workers.split(","))
            result[f"save_latency_{backend}"] = r = save_latency(
                backend,
                args.rate,
                args.duration,
                args.rounds,
                modes=modes,
                workers=workers,
                redis_url=args.redis_url,
            )
            for mode in _envs(backend, modes, workers, args.redis_url):
                m = r[mode]  # type: ignore[index]
                print(
                    f"{backend}: saves+reads at {args.rate:.0f} req/s, history {mode}: "
                    f"p50 {m['p50_ms_median']} ms, p99 median {m['p99_ms_median']} ms, "
                    f"worst {m['p99_ms_max']} ms; CPU/request server "
                    f"{m['server_cpu_ms_per_req_median']} ms, PostgreSQL "
                    f"{m['postgres_cpu_ms_per_req_median']} ms"
                    + (f"; p99 vs off {m['p99_vs_off']}x" if "p99_vs_off" in m else "")
                    + (
                        f"; p99 vs 1 worker {m['p99_vs_1_worker']}x"
                        if "p99_vs_1_worker" in m
                        else ""
                    )
                )
    write_result(args.out or ("history_load" if args.only_load else "history"), result)


if __name__ == "__main__":
    main()
