"""Live co-editing (issue 8): keystroke to a remote collaborator's document, and server cost.

1. Latency, interleaved in one run on two replicas (PostgreSQL, their own Redis): a one-character
   insert by a pycrdt client until a second client's document has it, (a) both clients on the
   same replica, (b) on different replicas (through the Redis bus), and (c) the floor: a bare
   WebSocket relay (the ``websockets`` library forwarding the same frames, no CRDT, no auth) on
   this machine. Targets: p99 < 50 ms (a) and < 80 ms (b).
2. Cost: a 10,000-line file, 5 editors on one replica typing 10 characters/s each at random
   places: the replica's CPU per editor (CPU seconds / wall seconds / editors), against the same
   replica with the same 5 editors connected and idle for as long (the floor); memory per open
   document (RSS growth per 10,000-line document opened, against the file's size).
3. Soak (``--soak 60``): two editors typing at the same spot for a minute through two replicas;
   every copy and the DB must end equal (the figure is the wait for convergence after the last
   keystroke).

    .venv/bin/python bench/bench_coedit.py [--keys 300] [--seconds 20] [--docs 10] [--soak 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.collab_client import CollabClient

from bench_agent_terminal import Serve
from bench_replicas import free_port, new_session, register
from benchstats import ratio, summary
from ccserver import rss_kb, write_result
from replicapair import two_replicas

PATH = "bench.txt"


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Pair:
    """A sender and a receiver; ``once`` is one keystroke's latency in ms."""

    def __init__(self, send: Any, recv: Any, path: str) -> None:
        self.send, self.recv, self.path = send, recv, path
        self.seen = asyncio.Event()
        recv.on_remote = lambda _p: self.seen.set()

    async def once(self) -> float:
        doc = self.recv.docs[self.path]
        from pycrdt import Text

        want = len(doc.get("content", type=Text)) + 1
        self.seen.clear()
        t0 = time.perf_counter()
        await self.send.edit(self.path, lambda t: t.insert(len(t), "k"))
        while len(doc.get("content", type=Text)) < want:
            await asyncio.wait_for(self.seen.wait(), 10)
            self.seen.clear()
        return (time.perf_counter() - t0) * 1000


class RelayFloor:
    """A bare WebSocket relay: each binary frame goes to the other connections (the floor of
    'a keystroke through a server process to another browser')."""

    def __init__(self) -> None:
        self.clients: set[Any] = set()

    async def handler(self, ws: Any) -> None:
        self.clients.add(ws)
        try:
            async for msg in ws:
                for c in list(self.clients):
                    if c is not ws:
                        await c.send(msg)
        finally:
            self.clients.discard(ws)


async def floor_once(a: Any, b: Any) -> float:
    t0 = time.perf_counter()
    await a.send(b"\x00" * 40)
    await b.recv()
    return (time.perf_counter() - t0) * 1000


async def client(port: int, token: str, sid: str, path: str = PATH) -> CollabClient:
    c = CollabClient(f"ws://127.0.0.1:{port}/api/sessions/{sid}/collab", token)
    await c.connect()
    await c.join(path)
    return c


def put(port: int, token: str, sid: str, path: str, content: str) -> None:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", cookies={"cc_session": token}, timeout=60
    ) as c:
        r = c.post(f"/api/workspace/{sid}/file/{path}", json={"content": content})
        r.raise_for_status()


def db_text(port: int, token: str, sid: str, path: str) -> str:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", cookies={"cc_session": token}, timeout=60
    ) as c:
        return str(c.get(f"/api/workspace/{sid}/file/{path}").json()["content"])


async def latency(ports: list[int], token: str, keys: int) -> dict[str, Any]:
    sid = new_session(f"http://127.0.0.1:{ports[0]}", token)
    put(ports[0], token, sid, PATH, "start\n")
    sender = await client(ports[0], token, sid)
    same = await client(ports[0], token, sid)
    cross = await client(ports[1], token, sid)
    relay = RelayFloor()
    floor_port = free_port()
    server = await websockets.serve(relay.handler, "127.0.0.1", floor_port, compression=None)
    fa = await websockets.connect(f"ws://127.0.0.1:{floor_port}", compression=None)
    fb = await websockets.connect(f"ws://127.0.0.1:{floor_port}", compression=None)
    one, two = Pair(sender, same, PATH), Pair(sender, cross, PATH)
    series: dict[str, list[float]] = {"one_replica": [], "two_replicas": [], "floor_relay": []}
    try:
        for _ in range(20):  # warm-up
            await one.once()
            await two.once()
        for i in range(keys):
            order = ["one_replica", "two_replicas", "floor_relay"]
            random.Random(i).shuffle(order)
            for name in order:
                if name == "one_replica":
                    series[name].append(await one.once())
                elif name == "two_replicas":
                    series[name].append(await two.once())
                else:
                    series[name].append(await floor_once(fa, fb))
            await asyncio.sleep(0.01)
    finally:
        for c in (sender, same, cross):
            await c.close()
        await fa.close()
        await fb.close()
        server.close()
    return {
        "keys": keys,
        "ms": {k: summary(v) for k, v in series.items()},
        "vs_floor": {
            "one_replica": ratio(series["one_replica"], series["floor_relay"]),
            "two_replicas": ratio(series["two_replicas"], series["floor_relay"]),
        },
        "targets_ms": {"one_replica_p99": 50, "two_replicas_p99": 80},
    }


async def cost(srv: Serve, token: str, seconds: float, docs: int) -> dict[str, Any]:
    port = srv.port
    sid = new_session(srv.base, token)
    lines = "".join(f"line {i:05d}: some code here = {i} * 2\n" for i in range(10_000))
    put(port, token, sid, PATH, lines)
    editors = [await client(port, token, sid) for _ in range(5)]
    pid = srv.proc.pid

    async def typing(c: CollabClient, rng: random.Random, until: float) -> None:
        while time.monotonic() < until:
            n = len(c.text(PATH))
            await c.edit(PATH, lambda t, n=n: t.insert(rng.randint(0, n), "x"))
            await asyncio.sleep(0.1)

    rounds: dict[str, list[float]] = {"typing": [], "idle": []}
    for r in range(3):  # interleaved: typing, idle, typing...
        for mode in ("typing", "idle"):
            c0, t0 = cpu_s(pid), time.monotonic()
            if mode == "typing":
                until = time.monotonic() + seconds / 3
                await asyncio.gather(
                    *(typing(c, random.Random(r * 10 + i), until) for i, c in enumerate(editors))
                )
            else:
                await asyncio.sleep(seconds / 3)
            rounds[mode].append((cpu_s(pid) - c0) / (time.monotonic() - t0) / 5 * 100)
    await asyncio.sleep(1)
    texts = {c.text(PATH) for c in editors}
    for c in editors:
        await c.close()
    # Memory per open document: open ``docs`` more 10,000-line files, one client each.
    for i in range(docs):
        put(port, token, sid, f"doc{i}.txt", lines)
    await asyncio.sleep(1)
    rss0 = rss_kb(pid)
    holders = [await client(port, token, sid, f"doc{i}.txt") for i in range(docs)]
    await asyncio.sleep(1)
    per_doc_kb = (rss_kb(pid) - rss0) / docs
    for c in holders:
        await c.close()
    return {
        "editors": 5,
        "chars_per_s_each": 10,
        "file_lines": 10_000,
        "file_bytes": len(lines),
        "converged": len(texts) == 1,
        "cpu_percent_per_editor": {k: summary(v) for k, v in rounds.items()},
        "cpu_typing_vs_idle_p50": round(
            sorted(rounds["typing"])[1] / max(sorted(rounds["idle"])[1], 1e-6), 1
        ),
        "memory_kb_per_open_document": round(per_doc_kb),
        "memory_per_document_vs_file_size": round(per_doc_kb * 1024 / len(lines), 2),
    }


async def soak(ports: list[int], token: str, seconds: float) -> dict[str, Any]:
    sid = new_session(f"http://127.0.0.1:{ports[0]}", token)
    put(ports[0], token, sid, PATH, "<>\n")
    a = await client(ports[0], token, sid)
    b = await client(ports[1], token, sid)
    until = time.monotonic() + seconds
    typed = 0
    while time.monotonic() < until:
        for c, ch in ((a, "a"), (b, "b")):
            await c.edit(PATH, lambda t, ch=ch: t.insert(1, ch))
            typed += 1
        await asyncio.sleep(0.05)
    t0 = time.monotonic()
    while a.text(PATH) != b.text(PATH):
        await asyncio.sleep(0.01)
    converge_ms = (time.monotonic() - t0) * 1000
    final = a.text(PATH)
    deadline = time.monotonic() + 30
    while db_text(ports[0], token, sid, PATH) != final and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    db_equal = db_text(ports[0], token, sid, PATH) == final
    await a.close()
    await b.close()
    return {
        "seconds": seconds,
        "keystrokes": typed,
        "converged": len(final) == typed + 3,
        "db_equal": db_equal,
        "converge_after_last_key_ms": round(converge_ms, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=21)
    ap.add_argument("--docs", type=int, default=10)
    ap.add_argument("--soak", type=float, default=60)
    args = ap.parse_args()
    with two_replicas("coedit") as replicas:
        ports = [r.port for r in replicas]
        token = register(replicas[0].base)
        result: dict[str, Any] = {
            "latency": asyncio.run(latency(ports, token, args.keys)),
            "cost": asyncio.run(cost(replicas[0], token, args.seconds, args.docs)),
        }
        if args.soak > 0:
            result["same_spot_soak"] = asyncio.run(soak(ports, token, args.soak))
    write_result("coedit", result)
    import json

    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
