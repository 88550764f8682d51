"""Figures of issue 14 (the sandbox agent), peers measured in the same run:

- keystroke echo p50/p99 through the agent (bash in a bubblewrap sandbox, over its unix
  socket) vs bash directly on a PTY of this process, keystrokes interleaved one by one;
- throughput of ``cat`` of a 100 MB text file through the agent vs directly on a PTY;
- agent start to ready inside a sandbox (p50), next to its parts: the bare sandboxed exec floor
  (``Sandbox.exec /bin/true``), ``python3 -S -c pass`` in a sandbox, and the agent's imports on
  the host (``python3 -S`` importing ``coolcoding.agent.__main__``) vs bare ``python3 -S``;
- the agent's memory (RSS, PSS, private), idle, with one terminal open.

Echo and ``cat`` have a second peer in the same rounds: a minimal relay process (raw bytes between
a unix socket and a PTY, no sandbox, no framing): the same number of processes on the path as
the agent, so ``agent - relay`` is what the agent itself adds and ``relay - direct`` what any
design with a process between the server and the PTY costs on this machine.

    .venv/bin/python bench/bench_agent.py [--keys 1000] [--mb 100] [--starts 30] [--rounds 3]
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


RELAY = r"""
import os, pty, selectors, socket, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/bash", ["/bin/bash", "--norc", "-i"])
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1]); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
sel = selectors.DefaultSelector()
sel.register(fd, selectors.EVENT_READ, "pty"); sel.register(conn, selectors.EVENT_READ, "sock")
while True:
    for key, _ in sel.select():
        if key.data == "pty":
            data = os.read(fd, 65536)
            conn.sendall(data)
        else:
            data = conn.recv(65536)
            if not data:
                sys.exit(0)
            os.write(fd, data)
"""


class Relay:
    """A second floor: the same number of processes as the agent path (this process -> a relay
    process -> bash), with nothing else: a blocking Python relay between a unix socket and a PTY
    on the host, raw bytes, no framing, no sandbox. What any design with a process between the
    server and the PTY costs here."""

    async def start(self) -> None:
        path = f"/tmp/cc-bench-relay-{secrets.token_hex(4)}.sock"
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-S", "-c", RELAY, path, stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        await self.proc.stdout.readline()
        self.reader, self.writer = await asyncio.open_unix_connection(path)
        os.unlink(path)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> bytes:
        return await self.reader.read(262144)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()


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


async def run(
    keys: int, mb: int, starts: int, rounds: int = 3, *, compare_package: str | None = None,
    starts_only: bool = False,
) -> dict[str, object]:  # fmt: skip
    out: dict[str, object] = {}
    socks = Path(tempfile.mkdtemp(prefix="cc-bench-agent-", dir="/tmp"))
    os.chmod(socks, 0o711)
    async with make_runtime(sandbox_tmp_bytes=(mb + 64) * 1024 * 1024) as rt:
        spec = new_spec(memory_mb=1024, pids=128, disk_bytes=64 * 1024 * 1024,
                        extra_ro_binds={script_path(): SANDBOX_SCRIPT_PATH})  # fmt: skip
        sb = await rt.start(spec)
        assert isinstance(sb, LocalSandbox)
        # --- start to ready, interleaved with its floors ---
        ready, floor, py, other = [], [], [], []
        for i in range(starts):
            secret = secrets.token_bytes(32)
            t0 = time.perf_counter()
            agent = await start_agent(sb, socks / f"s{i}", secret)
            ready.append((time.perf_counter() - t0) * 1000)
            await agent.stop()
            if compare_package is not None:  # the same, with another version of the code
                t0 = time.perf_counter()
                agent = await start_agent(sb, socks / f"o{i}", secret, package_dir=compare_package)
                other.append((time.perf_counter() - t0) * 1000)
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
        if other:
            out["start"].update({  # type: ignore[attr-defined]
                "compare_package": compare_package,
                "other_package_start_to_ready_p50_ms": round(pct(other, 50), 1),
                "other_package_start_to_ready_p99_ms": round(pct(other, 99), 1),
                "ratio_p50_this_to_other": round(pct(ready, 50) / pct(other, 50), 2),
            })  # fmt: skip
        if starts_only:
            return out
        # --- one agent for the terminal figures ---
        secret = secrets.token_bytes(32)
        agent = await start_agent(sb, socks / "main", secret)
        try:
            c = await AgentClient.connect(agent.socket_path, secret)
            await c.pty_open(120, 40, terminal_id="bench", argv=["/bin/bash", "--norc", "-i"])
            a_send, a_recv = agent_io(await c.pty_attach("bench"))
            direct = DirectPty()
            relay = Relay()
            await relay.start()
            big_direct = f"/tmp/cc-bench-{secrets.token_hex(4)}.txt"
            await prepare(a_send, a_recv, "/tmp/big.txt", mb)
            await prepare(direct.send, direct.recv, big_direct, mb)
            await prepare(relay.send, relay.recv, big_direct + ".r", mb)
            lat_a, lat_d, lat_r = [], [], []
            for i in range(keys):  # interleaved, keystroke by keystroke
                lat_a.append(await echo_once(a_send, a_recv, i))
                lat_d.append(await echo_once(direct.send, direct.recv, i))
                lat_r.append(await echo_once(relay.send, relay.recv, i))
            await a_send(b"\x15")
            await direct.send(b"\x15")
            await relay.send(b"\x15")
            cat_a, cat_d, cat_r = [], [], []
            for _ in range(rounds):
                cat_a.append(await cat(a_send, a_recv, "/tmp/big.txt"))
                cat_d.append(await cat(direct.send, direct.recv, big_direct))
                cat_r.append(await cat(relay.send, relay.recv, big_direct + ".r"))
            os.unlink(big_direct)
            os.unlink(big_direct + ".r")
            direct.close()
            await relay.close()
            await a_send(b"rm -f /tmp/big.txt; clear\r")
            await asyncio.sleep(2)
            pid = agent.host_pid()
            assert pid is not None
            out["terminal"] = {
                "echo_agent_p50_ms": round(pct(lat_a, 50), 3),
                "echo_agent_p99_ms": round(pct(lat_a, 99), 3),
                "echo_direct_pty_p50_ms": round(pct(lat_d, 50), 3),
                "echo_direct_pty_p99_ms": round(pct(lat_d, 99), 3),
                "echo_relay_p50_ms": round(pct(lat_r, 50), 3),
                "echo_relay_p99_ms": round(pct(lat_r, 99), 3),
                "echo_p99_agent_minus_direct_ms": round(pct(lat_a, 99) - pct(lat_d, 99), 3),
                "echo_p99_agent_minus_relay_ms": round(pct(lat_a, 99) - pct(lat_r, 99), 3),
                "cat_agent_mb_per_s_median": round(pct(cat_a, 50), 1),
                "cat_direct_pty_mb_per_s_median": round(pct(cat_d, 50), 1),
                "cat_relay_mb_per_s_median": round(pct(cat_r, 50), 1),
                "cat_agent_mb_per_s_all": [round(x, 1) for x in cat_a],
                "cat_direct_pty_mb_per_s_all": [round(x, 1) for x in cat_d],
                "cat_relay_mb_per_s_all": [round(x, 1) for x in cat_r],
                "cat_ratio_agent_to_direct_per_round": [
                    round(a / d, 2) for a, d in zip(cat_a, cat_d, strict=True)
                ],
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
    ap.add_argument("--rounds", type=int, default=3, help="cat rounds (interleaved)")
    ap.add_argument(
        "--compare-package", default=None,
        help="another copy of src/coolcoding (e.g. the previous commit's, from git archive): "
        "its agent's start to ready, interleaved start by start",
    )  # fmt: skip
    ap.add_argument("--starts-only", action="store_true", help="skip echo and cat")
    ap.add_argument("--out", default="agent", help="results/NAME.json")
    args = ap.parse_args()
    results = asyncio.run(
        run(args.keys, args.mb, args.starts, args.rounds,
            compare_package=args.compare_package, starts_only=args.starts_only)
    )  # fmt: skip
    for group, values in results.items():
        print(f"[{group}]")
        for k, v in values.items():  # type: ignore[attr-defined]
            print(f"  {k:<40} {v}")
    write_result(
        args.out,
        {
            "keys": args.keys,
            "cat_file_mb": args.mb,
            "starts": args.starts,
            "cat_rounds": args.rounds,
            "load_avg_at_end": os.getloadavg(),
            "targets": {"cat_mb_per_s": 50, "sandbox_start_to_prompt_p50_ms": 50},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
