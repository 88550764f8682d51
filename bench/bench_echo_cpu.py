"""CPU per keystroke through the whole server, this tree vs another copy of the code, in one run.

Two ``coolcoding serve`` processes (this tree; ``--other-src``, e.g. the previous commit's
``src`` from ``git archive``, whose agent is that copy's too) and the floor (bash on a PTY of
this process), keystrokes interleaved key by key: each key's echo is timed on all three in turn,
and the CPU of each server and of each session's agent (``/proc/PID/stat``, user + system) is
divided by its keys. On a loaded machine CPU per key is steadier than latency; both are reported.

    git archive HEAD~1 src | tar -x -C /tmp/old
    .venv/bin/python bench/bench_echo_cpu.py --other-src /tmp/old/src [--keys 3000]
        [--rounds 3] [--cat-mb 0] [--out NAME]

``--cat-mb N``: after each round of keys, each server's terminal also ``cat``s a file of N MB
(order alternating by round, like the keys): MB/s and CPU per MB of each server and agent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agent import DirectPty, Recv, Send, cat, echo_once, prepare, until
from bench_agent_terminal import Serve, agent_pid, cpu_s, open_ws, ws_io
from benchstats import pct, summary
from ccserver import write_result


class Variant:
    def __init__(self, name: str, src: str | None) -> None:
        self.name = name
        self.data = tempfile.mkdtemp(prefix=f"ccbench-echo-{name}-")
        os.chmod(self.data, 0o755)
        self.parent = f"coolcoding-bench-{os.getpid()}-{name}"
        old = os.environ.get("PYTHONPATH")
        if src is not None:
            os.environ["PYTHONPATH"] = src
        try:
            self.srv = Serve(self.data, self.parent)
        finally:
            if src is not None:
                if old is None:
                    del os.environ["PYTHONPATH"]
                else:
                    os.environ["PYTHONPATH"] = old
        self.sid = ""
        self.token = ""
        self.io: tuple[Send, Recv] | None = None
        self.agent = 0
        self.lat: list[float] = []
        self.cpu = {"server": 0.0, "agent": 0.0}
        self.cat_cpu = {"server": 0.0, "agent": 0.0}
        self.cat_mbps: list[float] = []

    async def open(self) -> None:
        self.srv.wait_healthy()
        c = httpx.Client(base_url=self.srv.base, timeout=60)
        name = f"bench{secrets.token_hex(4)}"
        self.token = c.post(
            "/api/users/register",
            json={"username": name, "email": f"{name}@example.com", "password": "benchmark-pass"},
        ).json()["token"]
        c.cookies.set("cc_session", self.token)
        self.sid = c.post("/api/sessions/", json={"name": "io"}).json()["uuid"]
        ws = await open_ws(self.srv, self.token, self.sid, "io")
        await ws.recv()  # ready
        self.io = ws_io(ws)
        await until(self.io[1], b"$ ")
        self.agent = agent_pid(self.parent, self.sid)

    def cpu_now(self) -> tuple[float, float]:
        return cpu_s(self.srv.proc.pid), cpu_s(self.agent)

    def close(self) -> None:
        if self.sid:
            c = httpx.Client(base_url=self.srv.base, timeout=60)
            c.cookies.set("cc_session", self.token)
            c.post(f"/api/sessions/{self.sid}/sandbox/stop")
        self.srv.proc.terminate()
        self.srv.proc.wait(30)
        shutil.rmtree(self.data, ignore_errors=True)


async def run(other_src: str, keys: int, rounds: int, cat_mb: int = 0) -> dict[str, Any]:
    variants = [Variant("this", None), Variant("other", other_src)]
    floor = DirectPty()
    floor_lat: list[float] = []
    out: dict[str, Any] = {"load_average_before": os.getloadavg()}
    try:
        for v in variants:
            await v.open()
            if cat_mb:
                assert v.io is not None
                await prepare(*v.io, "/tmp/big.txt", cat_mb)
        per_round = max(1, keys // rounds)
        for r in range(rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            c0 = {v.name: v.cpu_now() for v in variants}
            for i in range(r * per_round, (r + 1) * per_round):
                for v in order:
                    assert v.io is not None
                    v.lat.append(await echo_once(*v.io, i))
                floor_lat.append(await echo_once(floor.send, floor.recv, i))
            for v in variants:
                now = v.cpu_now()
                v.cpu["server"] += now[0] - c0[v.name][0]
                v.cpu["agent"] += now[1] - c0[v.name][1]
            for v in order if cat_mb else ():
                assert v.io is not None
                c1 = v.cpu_now()
                v.cat_mbps.append(await cat(*v.io, "/tmp/big.txt"))
                now = v.cpu_now()
                v.cat_cpu["server"] += now[0] - c1[0]
                v.cat_cpu["agent"] += now[1] - c1[1]
        n = per_round * rounds
        for v in variants if cat_mb else ():
            out[f"cat_{v.name}_mb_per_s"] = summary(v.cat_mbps, 1)
            out[f"cat_{v.name}_mb_per_s_rounds"] = [round(x, 1) for x in v.cat_mbps]
            out[f"cat_{v.name}_cpu_ms_per_mb"] = {
                k: round(s * 1000 / (cat_mb * rounds), 2) for k, s in v.cat_cpu.items()
            }
        out["echo_floor_ms"] = summary(floor_lat, 3)
        for v in variants:
            out[f"echo_{v.name}_ms"] = summary(v.lat, 3)
            out[f"echo_{v.name}_cpu_us_per_key"] = {
                k: round(s * 1e6 / n, 1) for k, s in v.cpu.items()
            }
            out[f"echo_{v.name}_p99_over_floor_ms"] = round(pct(v.lat, 99) - pct(floor_lat, 99), 3)
            out[f"echo_{v.name}_p50_over_floor_ms"] = round(pct(v.lat, 50) - pct(floor_lat, 50), 3)
        this, other = out["echo_this_cpu_us_per_key"], out["echo_other_cpu_us_per_key"]
        out["cpu_ratio_this_to_other"] = {
            k: round(this[k] / other[k], 2) if other[k] else None for k in this
        }
        if cat_mb:
            this_c, other_c = out["cat_this_cpu_ms_per_mb"], out["cat_other_cpu_ms_per_mb"]
            out["cat_cpu_ratio_this_to_other"] = {
                k: round(this_c[k] / other_c[k], 2) if other_c[k] else None for k in this_c
            }
            out["cat_mb_per_s_ratio_this_to_other"] = round(
                out["cat_this_mb_per_s"]["p50"] / out["cat_other_mb_per_s"]["p50"], 2
            )
        out["load_average_after"] = os.getloadavg()
    finally:
        floor.close()
        for v in variants:
            v.close()
    out["params"] = {"keys": keys, "rounds": rounds, "other_src": other_src, "cat_mb": cat_mb,
                     "clock_tick_s": 1 / os.sysconf("SC_CLK_TCK")}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other-src", required=True, help="another copy of src/ (git archive)")
    ap.add_argument("--keys", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cat-mb", type=int, default=0, help="also cat N MB per round (0: no)")
    ap.add_argument("--out", default="echo_cpu")
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = asyncio.run(run(args.other_src, args.keys, args.rounds, args.cat_mb))
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    write_result(args.out, result)
    for k, v in result.items():
        print(f"{k:<36} {v}")


if __name__ == "__main__":
    main()
