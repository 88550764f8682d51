"""Figures of issue 14 (the sandbox agent), peers measured in the same run:

- keystroke echo p50/p99 through the agent (bash in a bubblewrap sandbox, over its unix
  socket) vs bash directly on a PTY of this process, keystrokes interleaved one by one;
- throughput of ``cat`` of a 100 MB text file through the agent vs directly on a PTY;
- agent start to ready inside a sandbox (p50), next to its parts: the bare sandboxed exec floor
  (``Sandbox.exec /bin/true``), ``python3 -S -c pass`` in a sandbox, and the agent's imports on
  the host (``python3 -S`` importing ``coolcoding.agent.__main__``) vs bare ``python3 -S``;
- the agent's memory (RSS, PSS, private), idle, with one terminal open.

    .venv/bin/python bench/bench_agent.py [--keys 1000] [--mb 100] [--starts 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import secrets
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import pct
from ccserver import ROOT, write_result

sys.path.insert(0, str(ROOT))
from tests.integration.conftest_sandbox import make_runtime, new_spec

from coolcoding.agent.client import AgentClient, Attachment
from coolcoding.sandbox.local.agent_launch import start_agent
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.terminal.shell_integration import SANDBOX_SCRIPT_PATH, script_path

Send = Callable[[bytes], Awaitable[None]]
Recv = Callable[[], Awaitable[bytes]]


class DirectPty:
    """The floor: bash on a PTY of this process, read through the event loop."""

    def __init__(self) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            ["/bin/bash", "--norc", "-i"], stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )  # fmt: skip
        os.close(slave)
        os.set_blocking(master, False)
        self.fd = master
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self.queue.put_nowait(os.read(self.fd, 65536))

    async def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def recv(self) -> bytes:
        return await self.queue.get()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        self.proc.kill()
        self.proc.wait()
        os.close(self.fd)


def agent_io(att: Attachment) -> tuple[Send, Recv]:
    it = aiter(att)

    async def recv() -> bytes:
        while True:
            item = await anext(it)
            if isinstance(item, bytes):
                return item

    return att.write, recv


async def until(recv: Recv, marker: bytes, timeout: float = 300) -> int:
    got, tail = 0, b""
    async with asyncio.timeout(timeout):
        while marker not in tail:
            data = await recv()
            got += len(data)
            tail = (tail + data)[-256:]
    return got


async def prepare(send: Send, recv: Recv, path: str, mb: int) -> None:
    await send(b"stty -echoctl; PS1='$ '; PROMPT_COMMAND=; echo READY-$((1+1))\r")
    await until(recv, b"READY-2")
    raw = mb * 1_000_000 * 3 // 4
    await send(
        f"head -c {raw} /dev/urandom | base64 -w 100 > {path}; echo PREP-$((2+3))\r".encode()
    )
    await until(recv, b"PREP-5")
    await asyncio.sleep(0.3)


async def echo_once(send: Send, recv: Recv, i: int) -> float:
    key = b"x" if i % 2 == 0 else b"\x7f"
    t0 = time.perf_counter()
    await send(key)
    await until(recv, b"x" if key == b"x" else b"\x08")
    return (time.perf_counter() - t0) * 1000


async def cat(send: Send, recv: Recv, path: str) -> float:
    t0 = time.perf_counter()
    await send(f"cat {path}; echo DONE-$((3+4))\r".encode())
    n = await until(recv, b"DONE-7")
    return n / 1e6 / (time.perf_counter() - t0)


def memory_kb(pid: int) -> dict[str, int]:
    """RSS (counts shared pages of the interpreter in full), PSS and private memory."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return {
        "rss_kb": out["Rss"],
        "pss_kb": out["Pss"],
        "private_kb": out["Private_Clean"] + out["Private_Dirty"],
    }


def idle_python_memory() -> dict[str, int]:
    """The floor: a bare ``python3 -S`` with asyncio imported, idle in its event loop."""
    code = "import asyncio, sys; print(flush=True); asyncio.run(asyncio.sleep(30))"
    proc = subprocess.Popen(["/usr/bin/python3", "-S", "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.5)
        return memory_kb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def host_python_ms(code: str, runs: int) -> float:
    times = []
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/python3", "-S", "-c", code], check=True, env=env)
        times.append((time.perf_counter() - t0) * 1000)
    return pct(times, 50)


async def run(keys: int, mb: int, starts: int) -> dict[str, object]:
    out: dict[str, object] = {}
    socks = Path(tempfile.mkdtemp(prefix="cc-bench-agent-", dir="/tmp"))
    os.chmod(socks, 0o711)
    async with make_runtime(sandbox_tmp_bytes=(mb + 64) * 1024 * 1024) as rt:
        spec = new_spec(memory_mb=1024, pids=128, disk_bytes=64 * 1024 * 1024,
                        extra_ro_binds={script_path(): SANDBOX_SCRIPT_PATH})  # fmt: skip
        sb = await rt.start(spec)
        assert isinstance(sb, LocalSandbox)
        # --- start to ready, interleaved with its floors ---
        ready, floor, py = [], [], []
        for i in range(starts):
            secret = secrets.token_bytes(32)
            t0 = time.perf_counter()
            agent = await start_agent(sb, socks / f"s{i}", secret)
            ready.append((time.perf_counter() - t0) * 1000)
            await agent.stop()
            t0 = time.perf_counter()
            await sb.exec(["/bin/true"])
            floor.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await sb.exec(["/usr/bin/python3", "-S", "-c", "pass"])
            py.append((time.perf_counter() - t0) * 1000)
        out["start"] = {
            "agent_start_to_ready_p50_ms": round(pct(ready, 50), 1),
            "agent_start_to_ready_p99_ms": round(pct(ready, 99), 1),
            "sandbox_exec_true_p50_ms": round(pct(floor, 50), 1),
            "sandbox_exec_python_pass_p50_ms": round(pct(py, 50), 1),
            "host_python_S_pass_p50_ms": round(host_python_ms("pass", starts), 1),
            "host_python_S_import_asyncio_p50_ms": round(
                host_python_ms("import asyncio", starts), 1
            ),
            "host_python_S_import_agent_p50_ms": round(
                host_python_ms("import coolcoding.agent.__main__", starts), 1
            ),
        }
        # --- one agent for the terminal figures ---
        secret = secrets.token_bytes(32)
        agent = await start_agent(sb, socks / "main", secret)
        try:
            c = await AgentClient.connect(agent.socket_path, secret)
            await c.pty_open(120, 40, terminal_id="bench", argv=["/bin/bash", "--norc", "-i"])
            a_send, a_recv = agent_io(await c.pty_attach("bench"))
            direct = DirectPty()
            big_direct = f"/tmp/cc-bench-{secrets.token_hex(4)}.txt"
            await prepare(a_send, a_recv, "/tmp/big.txt", mb)
            await prepare(direct.send, direct.recv, big_direct, mb)
            lat_a, lat_d = [], []
            for i in range(keys):  # interleaved, keystroke by keystroke
                lat_a.append(await echo_once(a_send, a_recv, i))
                lat_d.append(await echo_once(direct.send, direct.recv, i))
            await a_send(b"\x15")
            await direct.send(b"\x15")
            cat_a, cat_d = [], []
            for _ in range(3):
                cat_a.append(await cat(a_send, a_recv, "/tmp/big.txt"))
                cat_d.append(await cat(direct.send, direct.recv, big_direct))
            os.unlink(big_direct)
            direct.close()
            await a_send(b"rm -f /tmp/big.txt; clear\r")
            await asyncio.sleep(2)
            pid = agent.host_pid()
            assert pid is not None
            out["terminal"] = {
                "echo_agent_p50_ms": round(pct(lat_a, 50), 3),
                "echo_agent_p99_ms": round(pct(lat_a, 99), 3),
                "echo_direct_pty_p50_ms": round(pct(lat_d, 50), 3),
                "echo_direct_pty_p99_ms": round(pct(lat_d, 99), 3),
                "cat_agent_mb_per_s_median": round(sorted(cat_a)[1], 1),
                "cat_direct_pty_mb_per_s_median": round(sorted(cat_d)[1], 1),
                **{f"agent_{k}_idle_one_terminal": v for k, v in memory_kb(pid).items()},
                **{f"floor_python_asyncio_idle_{k}": v for k, v in idle_python_memory().items()},
            }
            await c.close()
        finally:
            await agent.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--starts", type=int, default=30)
    args = ap.parse_args()
    results = asyncio.run(run(args.keys, args.mb, args.starts))
    for group, values in results.items():
        print(f"[{group}]")
        for k, v in values.items():  # type: ignore[attr-defined]
            print(f"  {k:<40} {v}")
    write_result(
        "agent",
        {
            "keys": args.keys,
            "cat_file_mb": args.mb,
            "starts": args.starts,
            "targets": {"cat_mb_per_s": 50, "sandbox_start_to_prompt_p50_ms": 50},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
