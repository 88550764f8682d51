"""Co-editing flush (Run and Ctrl+S save a co-edited file first): what it adds before a run.

Interleaved in one run on two replicas (PostgreSQL, their own Redis), one keystroke then a
``flush`` until its ``flushed`` answer: (a) the client on the replica holding the document's saver
lease, (b) on the other replica (the flush and its answer cross the Redis bus), against two peers
measured in the same loop: (c) the floor, a ping/pong round trip on the same co-editing socket, and
(d) the single-user path's save before a run, ``POST /api/workspace/{uuid}/file/{path}`` with the
whole file (what the IDE does when co-editing is off).

    .venv/bin/python bench/bench_coedit_flush.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.collab_client import CollabClient

from bench_agent_terminal import Serve
from bench_coedit import put
from bench_replicas import free_port, new_session, pg, register, wait_healthy
from benchstats import ratio, summary
from ccserver import write_result

PATH = "run_me.py"


class Timed(CollabClient):
    """A co-editing client that wakes a waiter on the answer it waits for (no polling)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.waiting: tuple[str, int | None, asyncio.Event] | None = None
        self.last: dict[str, Any] = {}

    def _on_json(self, m: dict[str, Any]) -> None:
        super()._on_json(m)
        w = self.waiting
        if w is not None and m["type"] == w[0] and (w[1] is None or m.get("id") == w[1]):
            self.last = m
            w[2].set()

    async def ask(self, message: dict[str, Any], answer: str, ident: int | None) -> dict[str, Any]:
        ev = asyncio.Event()
        self.waiting = (answer, ident, ev)
        await self.ws.send(json.dumps(message))
        await asyncio.wait_for(ev.wait(), 30)
        self.waiting = None
        return self.last


async def flush_once(c: Timed, n: int) -> float:
    t0 = time.perf_counter()
    await c.edit(PATH, lambda t: t.insert(len(t), "x"))
    m = await c.ask({"type": "flush", "path": PATH, "id": n}, "flushed", n)
    ms = (time.perf_counter() - t0) * 1000
    assert m["ok"] is True, m
    return ms


async def ping_once(c: Timed) -> float:
    t0 = time.perf_counter()
    await c.ask({"type": "ping"}, "pong", None)
    return (time.perf_counter() - t0) * 1000


async def rest_once(http: httpx.AsyncClient, sid: str, text: str) -> float:
    t0 = time.perf_counter()
    r = await http.post(f"/api/workspace/{sid}/file/rest.py", json={"content": text})
    ms = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return ms


async def measure(ports: list[int], token: str, rounds: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{ports[0]}"
    sid = new_session(base, token)
    put(ports[0], token, sid, PATH, "print('start')\n")
    local = Timed(f"ws://127.0.0.1:{ports[0]}/api/sessions/{sid}/collab", token)
    remote = Timed(f"ws://127.0.0.1:{ports[1]}/api/sessions/{sid}/collab", token)
    await local.connect()
    await local.join(PATH)  # the first to open it: replica 0 holds the saver lease
    await remote.connect()
    await remote.join(PATH)
    series: dict[str, list[float]] = {
        "flush_saver_replica": [],
        "flush_other_replica": [],
        "floor_ping": [],
        "peer_rest_save": [],
    }
    n = 0
    text = "print('start')\n"
    async with httpx.AsyncClient(base_url=base, cookies={"cc_session": token}, timeout=60) as http:
        try:
            for i in range(rounds + 10):
                order = list(series)
                random.Random(i).shuffle(order)
                got: dict[str, float] = {}
                for name in order:
                    n += 1
                    if name == "flush_saver_replica":
                        got[name] = await flush_once(local, n)
                    elif name == "flush_other_replica":
                        got[name] = await flush_once(remote, n)
                    elif name == "floor_ping":
                        got[name] = await ping_once(local)
                    else:
                        text += "x"
                        got[name] = await rest_once(http, sid, text)
                if i >= 10:  # the first 10 rounds warm up
                    for k, v in got.items():
                        series[k].append(v)
                await asyncio.sleep(0.01)
        finally:
            await local.close()
            await remote.close()
    return {
        "rounds": rounds,
        "ms": {k: summary(v) for k, v in series.items()},
        "vs_floor_ping": {
            k: ratio(series[k], series["floor_ping"])
            for k in ("flush_saver_replica", "flush_other_replica", "peer_rest_save")
        },
        "vs_peer_rest_save": {
            k: ratio(series[k], series["peer_rest_save"])
            for k in ("flush_saver_replica", "flush_other_replica")
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ccbench-flush-"))
    os.chmod(root, 0o755)
    db = f"ccbench_flush_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(pg(f'CREATE DATABASE "{db}"'))
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(root)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    parent = f"coolcoding-bench-flush-{os.getpid()}"
    replicas: list[Serve] = []
    try:
        for i in range(2):
            data = root / f"replica-{i}"
            data.mkdir()
            port = free_port()
            srv = Serve(
                str(data), parent, port,
                database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
                replica_address=f"http://127.0.0.1:{port}",
                sandbox_keep_on_shutdown="false", db_pool_size="3",
                collab_save_debounce_ms="60000",
            )  # fmt: skip
            wait_healthy(srv)
            replicas.append(srv)
        token = register(replicas[0].base)
        load_before = os.getloadavg()
        result: dict[str, Any] = asyncio.run(
            measure([r.port for r in replicas], token, args.rounds)
        )
        result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    finally:
        for r in replicas:
            r.proc.terminate()
            r.proc.wait(60)
        redis.terminate()
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    write_result("coedit_flush", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
