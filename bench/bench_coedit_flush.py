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
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.collab_client import CollabClient

from bench_coedit import put
from bench_replicas import new_session, register
from benchstats import ratio, summary
from ccserver import write_result
from replicapair import two_replicas

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
    with two_replicas("flush", collab_save_debounce_ms="60000") as replicas:
        token = register(replicas[0].base)
        load_before = os.getloadavg()
        result: dict[str, Any] = asyncio.run(
            measure([r.port for r in replicas], token, args.rounds)
        )
        result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    write_result("coedit_flush", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
