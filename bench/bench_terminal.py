"""Figure of issue 3 (terminal): keystroke echo latency over the WebSocket on loopback (p50/p99
over 1000 keystrokes) and the throughput of ``cat`` of a 100 MB file, for our server (bash in a
bubblewrap sandbox) and for terminado (Jupyter's terminal server, plain bash on a PTY, no
sandbox) in the same run.

    .venv/bin/python bench/bench_terminal.py [--keys 1000] [--mb 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccserver import ROOT, Server, pct, write_result

TERMINADO_APP = """
import sys, tornado.ioloop, tornado.web
from terminado import SingleTermManager, TermSocket
mgr = SingleTermManager(shell_command=["bash", "--norc", "-i"])
app = tornado.web.Application([(r"/websocket", TermSocket, {"term_manager": mgr})])
app.listen(int(sys.argv[1]), "127.0.0.1")
tornado.ioloop.IOLoop.current().start()
"""

# Python clients: no permessage-deflate (the server offers it; zlib would dominate the figure).
COMPRESSION: str | None = None
Send = Callable[[bytes], Awaitable[None]]
Recv = Callable[[], Awaitable[bytes]]


async def measure(send: Send, recv: Recv, keys: int, mb: int, prep: bytes) -> dict[str, float]:
    async def until(marker: bytes, timeout: float = 120) -> int:
        got, tail = 0, b""
        end = time.monotonic() + timeout
        while True:
            data = await asyncio.wait_for(recv(), end - time.monotonic())
            got += len(data)
            tail = (tail + data)[-256:]
            if marker in tail:
                return got

    await send(b"stty -echoctl; PS1='$ '; echo READY-$((1+1))\r")
    await until(b"READY-2")
    await asyncio.sleep(0.3)
    lat = []
    for i in range(keys):
        key = b"x" if i % 2 == 0 else b"\x7f"
        t0 = time.perf_counter()
        await send(key)
        await until(b"x" if key == b"x" else b"\x08")
        lat.append((time.perf_counter() - t0) * 1000)
    await send(b"\x15")  # clear the line
    await send(prep + b"; echo PREP-$((2+3))\r")
    await until(b"PREP-5", 300)
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    await send(b"cat /tmp/big.txt; echo DONE-$((3+4))\r")
    n = await until(b"DONE-7", 300)
    dt = time.perf_counter() - t0
    await send(b"rm -f /tmp/big.txt\r")
    return {
        "echo_p50_ms": round(pct(lat, 50), 3),
        "echo_p99_ms": round(pct(lat, 99), 3),
        "echo_max_ms": round(max(lat), 3),
        "cat_mb": round(n / 1e6, 1),
        "cat_s": round(dt, 3),
        "cat_mb_per_s": round(n / 1e6 / dt, 1),
    }


def prep_cmd(mb: int) -> bytes:
    # Text lines (base64 of random bytes), so the terminal stream is typical output.
    raw = mb * 1_000_000 * 3 // 4
    return f"head -c {raw} /dev/urandom | base64 -w 100 > /tmp/big.txt".encode()


async def ours(keys: int, mb: int) -> dict[str, float]:
    srv = Server(sandbox_tmp_bytes=str((mb + 64) * 1024 * 1024), sandbox_memory_mb="1024")
    try:
        sid = srv.new_session()
        url = f"{srv.ws}/api/sessions/{sid}/terminals/bench?cols=120&rows=40"
        async with websockets.connect(
            url, additional_headers=srv.headers, max_size=None, compression=COMPRESSION
        ) as ws:
            await ws.recv()  # ready

            async def recv() -> bytes:
                while True:
                    m = await ws.recv()
                    if isinstance(m, bytes):
                        return m

            return await measure(ws.send, recv, keys, mb, prep_cmd(mb))
    finally:
        srv.stop()


async def terminado(keys: int, mb: int) -> dict[str, float]:
    port = 20000 + secrets.randbelow(1000)
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-c", TERMINADO_APP, str(port)])
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        async with websockets.connect(f"ws://127.0.0.1:{port}/websocket", max_size=None) as ws:
            await ws.send(json.dumps(["set_size", 40, 120]))

            async def send(data: bytes) -> None:
                await ws.send(json.dumps(["stdin", data.decode()]))

            async def recv() -> bytes:
                while True:
                    msg = json.loads(await ws.recv())
                    if msg[0] == "stdout":
                        return str(msg[1]).encode()

            return await measure(send, recv, keys, mb, prep_cmd(mb))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    results = {
        "coolcoding (bwrap sandbox)": asyncio.run(ours(args.keys, args.mb)),
        "terminado (plain bash)": asyncio.run(terminado(args.keys, args.mb)),
    }
    cols = ["echo_p50_ms", "echo_p99_ms", "echo_max_ms", "cat_mb", "cat_s", "cat_mb_per_s"]
    print(f"{'server':<28}" + "".join(f"{c:>14}" for c in cols))
    for name, r in results.items():
        print(f"{name:<28}" + "".join(f"{r[c]:>14}" for c in cols))
    write_result(
        "terminal",
        {
            "keys": args.keys,
            "cat_file_mb": args.mb,
            "targets": {"echo_p99_ms": 5, "cat_mb_per_s": 50},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
