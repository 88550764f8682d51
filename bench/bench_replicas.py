"""Figures of issue 14 (stateless replicas): keystroke echo through a replica that does not hold
the session's lease (it proxies to the sandbox's agent) vs through the holder vs through a
single ``coolcoding serve`` (SQLite, no leases), interleaved in one run, as p50/p99 and ratios;
and reconnect through nginx after the replica serving a terminal is SIGKILLed, to a live prompt
(the browser's path: a new WebSocket that nginx sends to a live replica, reattaching the same
shell by its terminal id).

Three replicas on one PostgreSQL database (127.0.0.1:5432, user postgres) and a Redis of their
own, each with its own data dir, behind Debian's nginx with deploy/nginx/coolcoding.conf.

    .venv/bin/python bench/bench_replicas.py [--keys 1000] [--kills 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agent import echo_once, until
from bench_agent_terminal import Serve, ws_io
from ccserver import ROOT, pct, write_result

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A free port below the kernel's ephemeral range: a replica restarted on its port (nginx
    names it) must not find it taken by some client's outgoing connection meanwhile."""
    while True:
        port = 21000 + secrets.randbelow(8000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


async def pg(sql: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def wait_healthy(srv: Serve, timeout_s: float = 180) -> None:
    """Like ``Serve.wait_healthy`` with a deadline for a loaded machine (a replica's start-up
    reconciles the sessions it finds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            break
        try:
            if httpx.get(f"{srv.base}/api/health/", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.02)
    raise SystemExit(f"replica on port {srv.port} did not start")


def register(base: str) -> str:
    name = f"bench{secrets.token_hex(4)}"
    r = httpx.post(
        f"{base}/api/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": "benchmark-pass"},
        timeout=60,
    )
    return str(r.json()["token"])


def new_session(base: str, token: str) -> str:
    with httpx.Client(base_url=base, cookies={"cc_session": token}, timeout=60) as c:
        return str(c.post("/api/sessions/", json={"name": "bench"}).json()["uuid"])


async def ready_io(port: int, token: str, sid: str, tid: str) -> tuple[Any, Any, Any]:
    """A terminal on the replica at ``port``, at a bare prompt (as ``bench_agent.prepare``)."""
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/api/sessions/{sid}/terminals/{tid}?cols=120&rows=40",
        additional_headers={"Cookie": f"cc_session={token}"}, max_size=None, compression=None,
    )  # fmt: skip
    json.loads(await ws.recv())
    send, recv = ws_io(ws)
    await send(b"stty -echoctl; PS1='$ '; PROMPT_COMMAND=; echo READY-$((1+1))\r")
    await until(recv, b"READY-2")
    await asyncio.sleep(0.3)
    return ws, send, recv


class Cluster:
    def __init__(self, root: Path, parent: str) -> None:
        self.root = root
        self.db = f"ccbench_{os.getpid()}_{secrets.token_hex(3)}"
        asyncio.run(pg(f'CREATE DATABASE "{self.db}"'))
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(root)], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.parent = parent
        self.ports = [free_port() for _ in range(3)]
        self.replicas: list[Serve | None] = [None, None, None]
        self.nginx: subprocess.Popen[bytes] | None = None
        self.lb_port = free_port()

    def boot(self) -> None:
        """The replicas (one at a time: the first one migrates the empty database), nginx."""
        for i in range(3):
            self.start(i)
        prefix = self.root / "nginx"
        prefix.mkdir()
        servers = " ".join(f"server 127.0.0.1:{p};" for p in self.ports)
        conf = (ROOT / "deploy/nginx/coolcoding.conf").read_text()
        conf = conf.replace("__LISTEN__", f"127.0.0.1:{self.lb_port}")
        (prefix / "nginx.conf").write_text(conf.replace("__SERVERS__", servers))
        self.nginx = subprocess.Popen(
            [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix), "-c",
             str(prefix / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)

    def start(self, i: int) -> None:
        data = self.root / f"replica-{i}"
        data.mkdir(exist_ok=True)
        srv = Serve(
            str(data), self.parent, self.ports[i],
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.db}",
            redis_url=f"redis://127.0.0.1:{self.redis_port}/0",
            lease_ttl_s="3", lease_renew_interval_s="1",
            replica_address=f"http://127.0.0.1:{self.ports[i]}",
            sandbox_keep_on_shutdown="false",  # nothing outlives the benchmark
        )  # fmt: skip
        wait_healthy(srv)
        self.replicas[i] = srv

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
        for srv in self.replicas:
            if srv is not None and srv.proc.poll() is None:
                srv.proc.terminate()
                srv.proc.wait(60)
        self.redis.terminate()
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))


async def echo(cluster: Cluster, single: Serve, keys: int) -> dict[str, Any]:
    base0 = f"http://127.0.0.1:{cluster.ports[0]}"
    token = register(base0)
    sid = new_session(base0, token)
    holder = await ready_io(cluster.ports[0], token, sid, "holder")  # replica 0 starts it
    remote = await ready_io(cluster.ports[1], token, sid, "remote")  # replica 1 connects
    s_token = register(single.base)
    s_sid = new_session(single.base, s_token)
    alone = await ready_io(single.port, s_token, s_sid, "single")
    paths = {"non_holder": remote, "holder": holder, "single": alone}
    lat: dict[str, list[float]] = {k: [] for k in paths}
    for i in range(keys):  # interleaved: each keystroke through each path in turn
        for name, (_, send, recv) in paths.items():
            lat[name].append(await echo_once(send, recv, i))
    for ws, _, _ in paths.values():
        await ws.close()
    out: dict[str, Any] = {}
    for name, values in lat.items():
        out[f"echo_{name}_ms"] = {"p50": round(pct(values, 50), 3),
                                  "p99": round(pct(values, 99), 3)}  # fmt: skip
    for name in ("non_holder", "holder"):
        out[f"echo_{name}_over_single"] = {
            "p50": round(pct(lat[name], 50) / pct(lat["single"], 50), 2),
            "p99": round(pct(lat[name], 99) / pct(lat["single"], 99), 2),
        }
    out["echo_non_holder_over_holder"] = {
        "p50": round(pct(lat["non_holder"], 50) / pct(lat["holder"], 50), 2),
        "p99": round(pct(lat["non_holder"], 99) / pct(lat["holder"], 99), 2),
    }
    return out


async def lb_terminal(cluster: Cluster, token: str, sid: str) -> tuple[Any, int]:
    ws = await websockets.connect(
        f"ws://127.0.0.1:{cluster.lb_port}/api/sessions/{sid}/terminals/k?cols=120&rows=40",
        additional_headers={"Cookie": f"cc_session={token}"}, max_size=None, compression=None,
    )  # fmt: skip
    upstream = ws.response.headers.get("X-Coolcoding-Upstream", "")
    return ws, cluster.ports.index(int(upstream.rsplit(",", 1)[-1].rsplit(":", 1)[-1]))


async def reconnects(cluster: Cluster, kills: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{cluster.lb_port}"
    token = register(base)
    sid = new_session(base, token)
    times: list[float] = []
    killed_holder = 0
    for i in range(kills):
        ws, at = await lb_terminal(cluster, token, sid)
        json.loads(await ws.recv())
        victim = cluster.replicas[at]
        assert victim is not None
        conn = await asyncpg.connect(PG.rsplit("/", 1)[0] + f"/{cluster.db}")
        holder = await conn.fetchval(  # is the victim the lease holder?
            "SELECT address FROM leases WHERE name = $1", f"session:{sid}"
        )
        await conn.close()
        killed_holder += holder == f"http://127.0.0.1:{cluster.ports[at]}"
        victim.kill()
        t0 = time.perf_counter()
        while True:  # the browser's reconnect loop (it retries every 250 ms at first)
            try:
                ws2, _ = await lb_terminal(cluster, token, sid)
                ready = json.loads(await ws2.recv())
                if ready.get("type") == "ready":
                    break
            except (OSError, websockets.InvalidStatus, websockets.ConnectionClosed):
                pass
            await asyncio.sleep(0.05)
        send, recv = ws_io(ws2)
        await send(f"echo LIVE-$(({i}*3+1))\r".encode())
        await until(recv, f"LIVE-{i * 3 + 1}".encode())
        times.append((time.perf_counter() - t0) * 1000)
        await ws2.close()
        cluster.start(at)  # back before the next round (not timed)
    return {
        "reconnect_after_replica_sigkill_ms": {"p50": round(pct(times, 50), 1),
                                               "p99": round(pct(times, 99), 1)},
        "kills": kills,
        "of_which_lease_holder": killed_holder,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=10)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ccbench-replicas-"))
    os.chmod(root, 0o755)
    parent = f"coolcoding-bench-{os.getpid()}"
    cluster = Cluster(root, parent)
    single_dir = root / "single"
    single_dir.mkdir()
    single = Serve(str(single_dir), parent, free_port(), sandbox_keep_on_shutdown="false")
    try:
        wait_healthy(single)
        cluster.boot()
        result = asyncio.run(echo(cluster, single, a.keys))
        print(json.dumps(result, indent=2), flush=True)
        result.update(asyncio.run(reconnects(cluster, a.kills)))
    finally:
        single.proc.terminate()
        single.proc.wait(60)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    result["params"] = {"keys": a.keys, "kills": a.kills}
    print(json.dumps(result, indent=2))
    write_result("replicas", result)


if __name__ == "__main__":
    main()
