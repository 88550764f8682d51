"""Figures of issue 14 (terminals through the sandbox's agent, sandboxes outliving the server):
keystroke echo over the WebSocket through ``coolcoding serve`` to the agent's PTY vs a PTY of
this process (the floor; the old in-process path is gone), interleaved; ``cat`` throughput the
same way; sandbox start to a shell prompt; reconnect after a SIGKILL of the server to a live
prompt (a new server process on the same data dir finds the sandbox and reattaches).

    .venv/bin/python bench/bench_agent_terminal.py [--keys 1000] [--mb 50] [--starts 20]
        [--restarts 10] [--session-pool 0]

Start to prompt counts from ``POST /api/sessions/`` (with the session pool the creation binds a
pre-started sandbox; without it the terminal's open starts the sandbox cold).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agent import DirectPty, Recv, Send, cat, echo_once, prepare, until
from benchstats import pct
from ccserver import ROOT, write_result


class Serve:
    """``coolcoding serve`` on a data dir that outlives it (restart = a new ``Serve``)."""

    def __init__(
        self, data_dir: str, cgroup_parent: str, port: int | None = None, **extra: str
    ) -> None:
        self.port = port or 19000 + secrets.randbelow(1000)
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "COOLCODING_DATA_DIR": data_dir,
            "COOLCODING_SANDBOX_CGROUP_PARENT": cgroup_parent,
            "COOLCODING_SANDBOX_POOL_SIZE": "0",
            "COOLCODING_REGISTER_RATE_LIMIT": "100000",
            "COOLCODING_SANDBOX_TMP_BYTES": str(256 * 1024 * 1024),
            "COOLCODING_SANDBOX_MEMORY_MB": "1024",
            **{f"COOLCODING_{k.upper()}": v for k, v in extra.items()},
        }
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/coolcoding"), "serve", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_healthy(self) -> None:
        for _ in range(2000):
            try:
                if httpx.get(f"{self.base}/api/health/", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.005)
        raise SystemExit("server did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def open_ws(srv: Serve, token: str, sid: str, tid: str) -> Any:
    return await websockets.connect(
        f"ws://127.0.0.1:{srv.port}/api/sessions/{sid}/terminals/{tid}?cols=120&rows=40",
        additional_headers={"Cookie": f"cc_session={token}"},
        max_size=None,
        compression=None,
    )


def ws_io(ws: Any) -> tuple[Send, Recv]:
    async def recv() -> bytes:
        while True:
            m = await ws.recv()
            if isinstance(m, bytes):
                return m

    return ws.send, recv


async def run(
    keys: int, mb: int, starts: int, restarts: int, session_pool: int = 0
) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="ccbench-agent-")
    os.chmod(data, 0o755)
    parent = f"coolcoding-bench-{os.getpid()}"
    srv = Serve(data, parent, sandbox_session_pool_size=str(session_pool))
    srv.wait_healthy()
    client = httpx.Client(base_url=srv.base, timeout=60)
    name = f"bench{secrets.token_hex(4)}"
    token = client.post(
        "/api/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": "benchmark-pass"},
    ).json()["token"]
    client.cookies.set("cc_session", token)
    out: dict[str, Any] = {}
    try:
        # --- sandbox start to prompt ----------------------------------------------------------
        start_ms: list[float] = []
        create_ms: list[float] = []
        pooled = 0
        for _ in range(starts):
            if session_pool > 0:
                await asyncio.sleep(3)  # untimed: the pool refills after each creation
            t0 = time.perf_counter()  # the creation counts: with the pool it binds the sandbox
            made = client.post("/api/sessions/", json={"name": "s"}).json()
            sid = made["uuid"]
            create_ms.append((time.perf_counter() - t0) * 1000)
            pooled += made["sandbox_status"] == "running"  # bound at creation: from the pool
            ws = await open_ws(srv, token, sid, "t1")
            send, recv = ws_io(ws)
            await until(recv, b"$ ")
            start_ms.append((time.perf_counter() - t0) * 1000)
            await ws.close()
            client.post(f"/api/sessions/{sid}/sandbox/stop")
        out["start_to_prompt_ms"] = {"p50": round(pct(start_ms, 50), 1),
                                     "p99": round(pct(start_ms, 99), 1)}  # fmt: skip
        out["of_which_create_ms"] = {"p50": round(pct(create_ms, 50), 1),
                                     "p99": round(pct(create_ms, 99), 1)}  # fmt: skip
        out["starts_from_the_session_pool"] = pooled

        # --- echo and cat: agent via the server vs a PTY of this process, interleaved ------------
        sid = client.post("/api/sessions/", json={"name": "io"}).json()["uuid"]
        ws = await open_ws(srv, token, sid, "io")
        json.loads(await ws.recv())  # ready
        agent = ws_io(ws)
        floor = DirectPty()
        await prepare(*agent, "/tmp/big.txt", mb)
        floor_path = Path(tempfile.mkdtemp(prefix="ccbench-floor-")) / "big.txt"
        await prepare(floor.send, floor.recv, str(floor_path), mb)
        lat: dict[str, list[float]] = {"agent": [], "floor": []}
        for i in range(keys):
            lat["agent"].append(await echo_once(*agent, i))
            lat["floor"].append(await echo_once(floor.send, floor.recv, i))
        thr: dict[str, list[float]] = {"agent": [], "floor": []}
        for _ in range(3):
            thr["agent"].append(await cat(*agent, "/tmp/big.txt"))
            thr["floor"].append(await cat(floor.send, floor.recv, str(floor_path)))
        floor.close()
        shutil.rmtree(floor_path.parent, ignore_errors=True)
        for k in ("agent", "floor"):
            out[f"echo_{k}_ms"] = {"p50": round(pct(lat[k], 50), 3),
                                   "p99": round(pct(lat[k], 99), 3)}  # fmt: skip
            out[f"cat_{k}_mb_per_s"] = round(statistics.median(thr[k]), 1)
        out["echo_p99_over_floor_ms"] = round(pct(lat["agent"], 99) - pct(lat["floor"], 99), 3)
        out["cat_ratio_to_floor"] = round(
            statistics.median(thr["agent"]) / statistics.median(thr["floor"]), 2
        )
        await ws.send(b"clear\r")
        await ws.close()

        # --- reconnect after a SIGKILL of the server to a live prompt ----------------------------
        ws = await open_ws(srv, token, sid, "io")
        await ws.close()
        total, serve_up = [], []
        for i in range(restarts):
            srv.kill()
            t0 = time.perf_counter()
            srv = Serve(data, parent, sandbox_session_pool_size=str(session_pool))
            srv.wait_healthy()
            t1 = time.perf_counter()
            ws = await open_ws(srv, token, sid, "io")
            ready = json.loads(await ws.recv())
            assert ready["reattached"], ready
            send, recv = ws_io(ws)
            await send(f"echo LIVE-$(({i}*3+1))\r".encode())
            await until(recv, f"LIVE-{i * 3 + 1}".encode())
            total.append((time.perf_counter() - t0) * 1000)
            serve_up.append((t1 - t0) * 1000)
            await ws.close()
        out["reconnect_after_sigkill_ms"] = {"p50": round(pct(total, 50), 1),
                                             "p99": round(pct(total, 99), 1)}  # fmt: skip
        out["of_which_server_start_ms"] = {"p50": round(pct(serve_up, 50), 1),
                                           "p99": round(pct(serve_up, 99), 1)}  # fmt: skip
        attach = [t - s for t, s in zip(total, serve_up, strict=True)]
        out["of_which_reattach_to_live_prompt_ms"] = {"p50": round(pct(attach, 50), 1),
                                                      "p99": round(pct(attach, 99), 1)}  # fmt: skip
        client = httpx.Client(base_url=srv.base, timeout=60)
        client.cookies.set("cc_session", token)
        client.post(f"/api/sessions/{sid}/sandbox/stop")
    finally:
        srv.proc.terminate()
        srv.proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    out["params"] = {"keys": keys, "mb": mb, "starts": starts, "restarts": restarts}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument(
        "--session-pool", type=int, default=0,
        help="COOLCODING_SANDBOX_SESSION_POOL_SIZE of the server (0: every start is cold)",
    )  # fmt: skip
    a = ap.parse_args()
    result = asyncio.run(run(a.keys, a.mb, a.starts, a.restarts, a.session_pool))
    result["params"]["session_pool"] = a.session_pool
    print(json.dumps(result, indent=2))
    name = "agent_terminal" if a.session_pool == 0 else "agent_terminal_session_pool"
    write_result(name, result)


if __name__ == "__main__":
    main()
