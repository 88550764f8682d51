"""Figures of issue 14 (terminals through the sandbox's agent, sandboxes outliving the server):
keystroke echo over the WebSocket through ``coolcoding serve`` to the agent's PTY vs a PTY of
this process (the floor; the old in-process path is gone), interleaved; ``cat`` throughput the
same way; sandbox start to a shell prompt; reconnect after a SIGKILL of the server to a live
prompt (a new server process on the same data dir finds the sandbox and reattaches).

    .venv/bin/python bench/bench_agent_terminal.py [--keys 1000] [--mb 50] [--starts 20]
        [--restarts 10] [--session-pool 0] [--rounds 3] [--out NAME]

Two floors for ``cat``, interleaved with the server path round by round: bash on a PTY of this
process read through its event loop (as the server path ends in this process's event loop), and
the PTY's own speed: ``cat`` alone on a PTY read by a blocking loop in a separate process
(``os.read`` of 256 KiB; Linux hands a PTY's output over in reads of at most 4 KiB whatever the
size asked, so this is the kernel's line discipline and ``cat``, with no per-read overhead of an
event loop). ``--starts 0`` / ``--restarts 0`` skip those parts.

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
from benchstats import pct, summary
from ccserver import ROOT, write_result

TIGHT_READER = r"""
import os, resource, subprocess, sys, time
master, slave = os.openpty()
proc = subprocess.Popen(["cat", sys.argv[1]], stdin=slave, stdout=slave, stderr=slave,
                        start_new_session=True)
os.close(slave)
n = reads = 0
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
while True:
    try:
        data = os.read(master, 262144)
    except OSError:  # EIO: cat exited and the slave is closed
        break
    if not data:
        break
    n += len(data)
    reads += 1
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
proc.wait()
print(n, reads, dt, ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime)
"""


def tight_cat(path: str) -> tuple[float, float, float]:
    """MB/s of ``cat path`` on a PTY read by a blocking loop in a fresh process (the PTY's own
    speed), the mean bytes per read and the reader's CPU seconds in its read loop (user +
    system: the kernel's cost of reading a PTY, the floor of the agent's CPU per MB)."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", TIGHT_READER, path],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    n, reads, dt, cpu = out.stdout.split()
    return int(n) / 1e6 / float(dt), int(n) / max(1, int(reads)), float(cpu)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_pid(cgroup_parent: str, session_uuid: str = "") -> int:
    """The pid of the agent of ``session_uuid`` (any: the only one) in this bench's cgroup
    parent (a session's sandbox has the session's uuid in its cgroup path)."""
    for _ in range(50):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if (
                    argv[0].endswith(b"python3")  # not bwrap, whose argv names the agent too
                    and b"coolcoding.agent" in argv
                    and f"/{cgroup_parent}/" in (cgroup := (entry / "cgroup").read_text())
                    and f"/{session_uuid}" in cgroup
                ):
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.1)
    raise SystemExit("no agent process found")


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


FRAMES = {"messages": 0, "bytes": 0}  # binary WebSocket messages received (frame sizes)


def ws_io(ws: Any) -> tuple[Send, Recv]:
    async def recv() -> bytes:
        while True:
            m = await ws.recv()
            if isinstance(m, bytes):
                FRAMES["messages"] += 1
                FRAMES["bytes"] += len(m)
                return m

    return ws.send, recv


async def run(
    keys: int, mb: int, starts: int, restarts: int, session_pool: int = 0, rounds: int = 3
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
    out: dict[str, Any] = {"load_average_before": os.getloadavg()}
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
        if starts:
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
        thr: dict[str, list[float]] = {"agent": [], "floor": [], "pty_tight": []}
        bytes_per_read: list[float] = []
        agent_proc = agent_pid(parent, sid)
        cpu: dict[str, float] = {"server": 0.0, "agent": 0.0, "client": 0.0, "floor_client": 0.0,
                                 "pty_tight_reader": 0.0}  # fmt: skip
        key_cpu = {"server": 0.0, "agent": 0.0}
        cat_frames: list[float] = []
        per_round = max(1, keys // rounds)
        for r in range(rounds):  # echo and cat take turns, each interleaved with its floors
            c0 = (cpu_s(srv.proc.pid), cpu_s(agent_proc))
            for i in range(r * per_round, (r + 1) * per_round):
                lat["agent"].append(await echo_once(*agent, i))
                lat["floor"].append(await echo_once(floor.send, floor.recv, i))
            key_cpu["server"] += cpu_s(srv.proc.pid) - c0[0]
            key_cpu["agent"] += cpu_s(agent_proc) - c0[1]
            c0 = (cpu_s(srv.proc.pid), cpu_s(agent_proc), time.process_time())
            f0 = dict(FRAMES)
            thr["agent"].append(await cat(*agent, "/tmp/big.txt"))
            cat_frames.append(
                (FRAMES["bytes"] - f0["bytes"]) / (FRAMES["messages"] - f0["messages"])
            )
            cpu["server"] += cpu_s(srv.proc.pid) - c0[0]
            cpu["agent"] += cpu_s(agent_proc) - c0[1]
            cpu["client"] += time.process_time() - c0[2]
            c0 = (0.0, 0.0, time.process_time())
            thr["floor"].append(await cat(floor.send, floor.recv, str(floor_path)))
            cpu["floor_client"] += time.process_time() - c0[2]
            mbps, per_read, tight_cpu = await asyncio.to_thread(tight_cat, str(floor_path))
            cpu["pty_tight_reader"] += tight_cpu
            thr["pty_tight"].append(mbps)
            bytes_per_read.append(per_read)
        floor.close()
        shutil.rmtree(floor_path.parent, ignore_errors=True)
        for k in ("agent", "floor"):
            out[f"echo_{k}_ms"] = summary(lat[k], 3)
        for k in ("agent", "floor", "pty_tight"):
            out[f"cat_{k}_mb_per_s"] = summary(thr[k], 1)
            out[f"cat_{k}_mb_per_s_rounds"] = [round(x, 1) for x in thr[k]]
        total_mb = rounds * mb * 1.0  # base64 of mb*3/4 MB with line ends: ~mb MB each
        out["cat_cpu_ms_per_mb"] = {k: round(v * 1000 / total_mb, 2) for k, v in cpu.items()}
        out["cat_agent_cpu_ratio_to_pty_tight_reader"] = round(
            cpu["agent"] / max(cpu["pty_tight_reader"], 1e-9), 2
        )
        n_keys = per_round * rounds
        out["echo_cpu_us_per_key"] = {k: round(v * 1e6 / n_keys, 1) for k, v in key_cpu.items()}
        out["cat_bytes_per_websocket_message"] = [round(x) for x in cat_frames]
        out["pty_tight_bytes_per_read"] = round(statistics.fmean(bytes_per_read))
        out["echo_p99_over_floor_ms"] = round(pct(lat["agent"], 99) - pct(lat["floor"], 99), 3)
        out["echo_p50_over_floor_ms"] = round(
            statistics.median(lat["agent"]) - statistics.median(lat["floor"]), 3
        )
        out["cat_ratio_to_floor"] = round(
            statistics.median(thr["agent"]) / statistics.median(thr["floor"]), 2
        )
        out["cat_ratio_to_pty_tight"] = round(
            statistics.median(thr["agent"]) / statistics.median(thr["pty_tight"]), 2
        )
        out["load_average_after_io"] = os.getloadavg()
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
        if restarts:
            out["reconnect_after_sigkill_ms"] = {"p50": round(pct(total, 50), 1),
                                                 "p99": round(pct(total, 99), 1)}  # fmt: skip
            out["of_which_server_start_ms"] = {"p50": round(pct(serve_up, 50), 1),
                                               "p99": round(pct(serve_up, 99), 1)}  # fmt: skip
            attach = [t - s for t, s in zip(total, serve_up, strict=True)]
            out["of_which_reattach_to_live_prompt_ms"] = {
                "p50": round(pct(attach, 50), 1), "p99": round(pct(attach, 99), 1)
            }  # fmt: skip
        client = httpx.Client(base_url=srv.base, timeout=60)
        client.cookies.set("cc_session", token)
        client.post(f"/api/sessions/{sid}/sandbox/stop")
    finally:
        srv.proc.terminate()
        srv.proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    out["params"] = {"keys": keys, "mb": mb, "starts": starts, "restarts": restarts,
                     "rounds": rounds}  # fmt: skip
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
    ap.add_argument("--rounds", type=int, default=3, help="echo/cat rounds, interleaved")
    ap.add_argument("--out", default=None, help="results/NAME.json (default by session pool)")
    a = ap.parse_args()
    result = asyncio.run(run(a.keys, a.mb, a.starts, a.restarts, a.session_pool, a.rounds))
    result["params"]["session_pool"] = a.session_pool
    print(json.dumps(result, indent=2))
    name = "agent_terminal" if a.session_pool == 0 else "agent_terminal_session_pool"
    write_result(a.out or name, result)


if __name__ == "__main__":
    main()
