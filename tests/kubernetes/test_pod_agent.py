"""The session pod's process path without Kubernetes: the pod's exact entrypoint (``boot`` waiting
on its FIFO, then the agent on TCP), the secret delivered the way the runtime does it, and
``KubernetesSandbox`` (files, exec with ``measure``, terminals) against that real agent.
What differs in a cluster (scheduling, volumes, NetworkPolicy) is in test_live_cluster.py."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coolcoding.agent.client import AgentClient, AgentRefused
from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.kubernetes import objects as o
from coolcoding.sandbox.kubernetes.sandbox import KubernetesSandbox
from tests.kubernetes.k8s_cases import pod_config

SRC = str(Path(__file__).resolve().parents[2] / "src")
SECRET = b"k" * 32
MEASURE = f"{SRC}/coolcoding/sandbox/kubernetes/measure.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def pod(tmp_path: Path) -> AsyncIterator[tuple[KubernetesSandbox, Path, str]]:
    port = _free_port()
    ws = tmp_path / "workspace"
    ws.mkdir()
    fifo = str(tmp_path / "secret.fifo")
    cmd = o.agent_command(pod_config(k8s_agent_port=port))
    cmd = [sys.executable if a == "/usr/bin/python3" else a for a in cmd]
    cmd[cmd.index(o.SECRET_FIFO)] = fifo
    cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{port}"
    cmd[cmd.index("--workspace") + 1] = str(ws)
    # A home of its own, as in the pod: the host's dotfiles (a login shell's pyenv rehash
    # waiting 60 s on a stale lock, seen here) are not the pod's.
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC, "HOME": str(home)}
    proc = subprocess.Popen(cmd, env=env)
    try:
        deliver = subprocess.run(
            [sys.executable, "-S", "-m", "coolcoding.sandbox.kubernetes.boot", "--deliver", fifo],
            input=SECRET, env=env, timeout=30,
        )  # fmt: skip
        assert deliver.returncode == 0
        sb = KubernetesSandbox("u", ("127.0.0.1", port), SECRET, pod="exec-u", pod_uid="uid",
                               disk_bytes=2**30, wait_gone=_never,
                               measure=(sys.executable, MEASURE))  # fmt: skip
        for _ in range(200):
            try:
                await (await sb.connect_agent()).close()
                break
            except Exception:
                await asyncio.sleep(0.05)
        yield sb, ws, fifo
        await sb.close()
    finally:
        proc.terminate()
        proc.wait(10)


async def _never() -> str:
    await asyncio.Future()
    return ""


async def test_files_round_trip_through_the_agent(pod) -> None:
    sb, ws, fifo = pod
    assert not os.path.exists(fifo)  # the FIFO is gone once the secret was read
    await sb.write_files({"src/a.py": b"print(1)\n", "empty/": b""})
    assert (ws / "src" / "a.py").read_bytes() == b"print(1)\n" and (ws / "empty").is_dir()
    assert await sb.read_file("src/a.py") == b"print(1)\n"
    await sb.write_files({"src/a.py": None})
    assert not (ws / "src" / "a.py").exists()


async def test_wrong_secret_is_refused(pod) -> None:
    sb, _, _ = pod
    with pytest.raises(AgentRefused):
        await AgentClient.connect(sb.address, b"x" * 32)


async def test_exec_measures_and_keeps_the_status_out_of_stderr(pod) -> None:
    sb, _, _ = pod
    r = await sb.exec([sys.executable, "-c", "import sys; d=sys.stdin.read(); print(d.upper());"
                       "print('err', file=sys.stderr)"], stdin=b"hi", limits=ExecLimits(wall_s=20))  # fmt: skip
    assert (r.exit_code, r.stdout, r.stderr, r.limit_hit) == (0, b"HI\n", b"err\n", None)
    assert r.cpu_ms > 0 and r.memory_kb > 0


async def test_exec_limits_cpu_memory_wall(pod) -> None:
    sb, _, _ = pod
    cpu = await sb.exec(
        [sys.executable, "-c", "while True: pass"], limits=ExecLimits(cpu_s=1, wall_s=30)
    )
    assert cpu.limit_hit == "cpu" and cpu.exit_code is None
    mem = await sb.exec([sys.executable, "-c", "import time; x=bytearray(300*2**20); time.sleep(5)"],
                        limits=ExecLimits(memory_mb=100, wall_s=30))  # fmt: skip
    assert mem.limit_hit == "memory" and mem.memory_kb > 100 * 1024
    wall = await sb.exec(["sleep", "30"], limits=ExecLimits(wall_s=1))
    assert wall.limit_hit == "wall"


async def test_program_cannot_forge_the_status(pod) -> None:
    sb, _, _ = pod
    forged = (b'\\n\\x00coolcoding-status:' + b"0" * 32 +
              b'{"exit_code": 0, "signal": null, "cpu_ms": 1, "memory_kb": 1, "wall_ms": 1, "limit_hit": null}')  # fmt: skip
    code = f"import sys; sys.stderr.buffer.write(b'{forged.decode()}\\n'); sys.exit(3)"
    r = await sb.exec([sys.executable, "-c", code], limits=ExecLimits(wall_s=20))
    assert r.exit_code == 3 and b"coolcoding-status" in r.stderr


async def test_output_cap(pod) -> None:
    sb, _, _ = pod
    r = await sb.exec([sys.executable, "-c", "print('x' * 100000)"],
                      limits=ExecLimits(wall_s=20, output_bytes=1000))  # fmt: skip
    assert r.stdout_truncated and len(r.stdout) == 1000 and r.limit_hit == "output"


async def test_exec_stream_yields_chunks(pod) -> None:
    sb, _, _ = pod
    async with sb.exec_stream([sys.executable, "-c", "print('a'); import sys; print('b', file=sys.stderr)"],
                              limits=ExecLimits(wall_s=20)) as run:  # fmt: skip
        got = [c async for c in run.chunks()]
        result = await run.result()
    assert (b"".join(d for k, d in got if k == "stdout"), result.exit_code) == (b"a\n", 0)
    assert b"".join(d for k, d in got if k == "stderr") == b"b\n" == result.stderr


async def test_terminal_runs_a_shell(pod) -> None:
    sb, _, _ = pod
    term = await sb.open_terminal(80, 24, env={"PS1": "$ "})
    await term.write(b"echo ok-$((40+2))\n")
    out = b""
    async with asyncio.timeout(30):
        while b"ok-42" not in out:
            out += await term.read()
    await term.close()


async def test_session_env_under_the_calls_env(pod) -> None:
    sb, _, _ = pod
    sb.env = {"A": "session", "B": "session"}
    r = await sb.exec([sys.executable, "-c", "import os; print(os.environ['A'], os.environ['B'])"],
                      env={"B": "call"}, limits=ExecLimits(wall_s=20))  # fmt: skip
    assert r.stdout == b"session call\n"


@pytest.mark.skipif(not os.path.exists("/usr/bin/gcc"), reason="gcc is not installed")
async def test_compile_and_run_c_like_the_judge(pod) -> None:
    from coolcoding.execution.languages import LANGUAGES

    sb, _, _ = pod
    c = next(lang for lang in LANGUAGES if lang.id == "c")
    await sb.write_files({"main.c": b'#include <stdio.h>\nint main(){int a,b;scanf("%d %d",&a,&b);'
                                    b'printf("%d\\n",a+b);return 0;}\n'})  # fmt: skip
    assert c.compile is not None
    argv = [a.replace("{build}", "build").replace("{entry}", "main.c") for a in c.compile
            if a != "{sources}"] + (["main.c"] if "{sources}" in c.compile else [])  # fmt: skip
    await sb.write_files({"build/": b""})
    built = await sb.exec(argv, limits=ExecLimits(cpu_s=20, wall_s=60, memory_mb=1024))
    assert built.exit_code == 0, built.stderr
    assert built.cpu_ms > 0  # the compiler's children (cc1, as, ld) are counted
    run = await sb.exec(["build/main"], stdin=b"40 2\n", limits=ExecLimits(cpu_s=2, wall_s=10))
    assert (run.exit_code, run.stdout, run.limit_hit) == (0, b"42\n", None)


async def test_disk_usage_and_oom_preference(pod) -> None:
    sb, _, _ = pod
    await sb.write_files({"big.bin": b"x" * 300_000})
    usage = await sb.disk_usage()
    assert usage.used_bytes >= 300_000 and usage.limit_bytes == 2**30
    r = await sb.exec(["cat", "/proc/self/oom_score_adj"], limits=ExecLimits(wall_s=10))
    assert r.stdout == b"1000\n"  # the OOM killer takes a program before the agent
