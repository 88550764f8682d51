"""Figures of issue 14 for one host (the runtime and its agent, no server): sandbox start to a
shell prompt and idle sessions held per GiB, each against a floor measured in the same run.

- start to prompt, three ways, interleaved with the floor: *warm* = a new session from the
  session pool (reserve its uuid, start = bind, first terminal to the answer of an ``echo``:
  the pool started that shell ahead, ``pty.spare``); *new, cold* = a new
  session without the pool; *restart* = an existing session with 100 files, stopped, started
  again. The new, cold one: ``LocalRuntime.start`` of a new session (workspace image, /etc, cgroup, the
  agent) then a login shell through the agent (``open_terminal``, as the server opens one) until
  its first prompt; floor: a login bash on a PTY of a new bwrap in an already running sandbox
  (no agent, no image). Parts, interleaved in the same rounds: the agent's own start to ready in
  a running sandbox, and ``python3 -S -c pass`` run in a sandbox;
- interpreter: CPU time of ``python3 -S`` importing the agent (its bytecode copy, as in a
  sandbox) vs ``python3 -S -c pass``;
- idle sessions per GiB: ``--sessions`` sessions, each with one open terminal (idle login bash);
  per session the agent's cgroup (bwrap, the agent, its bash; kernel memory included) and the
  PSS / private dirty memory of its processes; floor: the same sandboxes' bwrap + login bash on
  a PTY without the agent, held at the same time.

    .venv/bin/python bench/bench_agent_scale.py [--starts 30] [--sessions 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import pct, ratio, summary
from ccserver import ROOT, write_result

sys.path.insert(0, str(ROOT))
from tests.integration.conftest_sandbox import make_runtime, new_spec

from coolcoding.sandbox.base import Terminal
from coolcoding.sandbox.local.agent_launch import agent_package_copy, start_agent
from coolcoding.sandbox.local.cgroups import Cgroup, CgroupLimits
from coolcoding.sandbox.local.process import SandboxProcess
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.terminal.shell_integration import SANDBOX_SCRIPT_PATH, script_path

MARK = b"<CC-PROMPT>"
PROMPT_ENV = {"PROMPT_COMMAND": "printf '<CC-%s>' PROMPT", "TERM": "xterm-256color"}
MB = 1024 * 1024


def spec_kw() -> dict[str, object]:
    return {"memory_mb": 256, "pids": 64, "disk_bytes": 64 * MB,
            "extra_ro_binds": {script_path(): SANDBOX_SCRIPT_PATH}}  # fmt: skip


class FloorShell:
    """The floor: a login bash on a PTY of a new bwrap of ``sb`` (no agent), in its own leaf."""

    def __init__(self, proc: SandboxProcess, cgroup: Cgroup, fd: int) -> None:
        self.proc, self.cgroup, self.fd = proc, cgroup, fd

    @classmethod
    async def open(cls, sb: LocalSandbox) -> FloorShell:
        cgroup = sb.new_leaf("floor", CgroupLimits())
        master, slave = os.openpty()
        try:
            proc = await sb.spawn(
                ["/bin/bash", "--login", "-i"], cgroup=cgroup, stdin=slave, stdout=slave,
                stderr=slave, cwd=None, env=PROMPT_ENV, terminal=True,
            )  # fmt: skip
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(proc, cgroup, master)

    async def until_prompt(self) -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_reader(self.fd, got.set)
        out = b""
        try:
            async with asyncio.timeout(30):
                while MARK not in out:
                    await got.wait()
                    got.clear()
                    with contextlib.suppress(BlockingIOError):
                        out = (out + os.read(self.fd, 65536))[-4096:]
        finally:
            loop.remove_reader(self.fd)

    async def close(self) -> None:
        self.proc.terminate_tree(self.cgroup)
        await self.proc.wait()
        os.close(self.fd)
        self.cgroup.remove()


async def agent_prompt(sb: LocalSandbox) -> Terminal:
    term = await sb.open_terminal(80, 24, env=PROMPT_ENV)
    out = b""
    async with asyncio.timeout(30):
        while MARK not in out:
            out = (out + await term.read())[-4096:]
    return term


async def restart_with_files(rt: LocalRuntime, files: int) -> tuple[str, float, float]:
    """An existing session with ``files`` files, stopped, started again (the cold path of an
    existing session: its image is mounted, no mkfs); (uuid, start ms, start to prompt ms)."""
    sb = await rt.start(new_spec(**spec_kw()))
    name = sb.spec.session_uuid
    await sb.write_files({f"src/f{i}.py": b"print(%d)\n" % i for i in range(files)})
    await rt.stop(name)
    t0 = time.perf_counter()
    sb = await rt.start(new_spec(**spec_kw(), session_uuid=name))
    t1 = time.perf_counter()
    assert isinstance(sb, LocalSandbox)
    term = await agent_prompt(sb)
    t2 = time.perf_counter()
    await term.close()
    await rt.delete_workspace(name)
    return name, (t1 - t0) * 1000, (t2 - t0) * 1000


async def warm_start(rt: LocalRuntime) -> tuple[float, float]:
    """A new session from the session pool, as ``POST /api/sessions/`` does it: reserve a
    uuid, start the session's spec with it (the bind), its first terminal until a command's
    answer (``first_answer``).
    The pool is refilled (untimed) before and after, so each round finds a ready sandbox and
    no refill runs during the other measurements."""
    await rt.session_pool.wait_full(60)
    t0 = time.perf_counter()
    name = rt.reserve_session_uuid(network=False)
    assert name is not None
    sb = await rt.start(new_spec(**spec_kw(), session_uuid=name))
    t1 = time.perf_counter()
    assert isinstance(sb, LocalSandbox) and sb.agent is not None
    term = await first_answer(sb)
    t2 = time.perf_counter()
    await term.close()
    await rt.delete_workspace(name)
    # The refill (a whole new sandbox) is not left running into the peers' measurements.
    await rt.session_pool.wait_full(60)
    return (t1 - t0) * 1000, (t2 - t0) * 1000


async def first_answer(sb: LocalSandbox) -> Terminal:
    """A terminal as the server opens one (the default shell: the pool's spare one), until the
    answer of a first command: later than its prompt (a stricter end than ``agent_prompt``'s,
    which needs a PROMPT_COMMAND of its own and so a shell of its own)."""
    term = await sb.open_terminal(80, 24)
    await term.write(b"echo ready-$((6*7))\r")
    out = b""
    async with asyncio.timeout(30):
        while b"ready-42" not in out:
            out = (out + await term.read())[-4096:]
    return term


async def start_rounds(rt: LocalRuntime, base: LocalSandbox, starts: int) -> dict[str, object]:
    total, rt_start, term_ms, floor, agent_ready, py_pass = [], [], [], [], [], []
    warm, warm_bind, restart, restart_start = [], [], [], []
    socks = Path(tempfile.mkdtemp(prefix="cc-bench-scale-", dir="/tmp"))
    os.chmod(socks, 0o711)
    for i in range(starts):
        sides = ["ours", "floor", "warm", "restart"]
        for side in sides[i % 4 :] + sides[: i % 4]:
            if side == "warm":
                bind_ms, prompt_ms = await warm_start(rt)
                warm_bind.append(bind_ms)
                warm.append(prompt_ms)
            elif side == "restart":
                _, start_ms, prompt_ms = await restart_with_files(rt, 100)
                restart_start.append(start_ms)
                restart.append(prompt_ms)
            elif side == "ours":
                t0 = time.perf_counter()
                sb = await rt.start(new_spec(**spec_kw()))
                t1 = time.perf_counter()
                assert isinstance(sb, LocalSandbox)
                term = await agent_prompt(sb)
                t2 = time.perf_counter()
                total.append((t2 - t0) * 1000)
                rt_start.append((t1 - t0) * 1000)
                term_ms.append((t2 - t1) * 1000)
                await term.close()
                await rt.delete_workspace(sb.spec.session_uuid)
            else:
                t0 = time.perf_counter()
                shell = await FloorShell.open(base)
                await shell.until_prompt()
                floor.append((time.perf_counter() - t0) * 1000)
                await shell.close()
        t0 = time.perf_counter()
        agent = await start_agent(base, socks / f"s{i}", secrets.token_bytes(32))
        agent_ready.append((time.perf_counter() - t0) * 1000)
        await agent.stop()
        t0 = time.perf_counter()
        await base.exec(["/usr/bin/python3", "-S", "-c", "pass"])
        py_pass.append((time.perf_counter() - t0) * 1000)
    return {
        "start_to_prompt_ms": summary(total),
        "floor_bwrap_login_bash_pty_ms": summary(floor),
        "ratio_to_floor": ratio(total, floor),
        "warm_new_session_from_pool_to_prompt_ms": summary(warm),
        "warm_ratio_to_floor": ratio(warm, floor),
        "warm_part_reserve_and_bind_ms": summary(warm_bind),
        "restart_existing_session_100_files_to_prompt_ms": summary(restart),
        "restart_ratio_to_floor": ratio(restart, floor),
        "restart_part_runtime_start_ms": summary(restart_start),
        "parts": {
            "runtime_start_ms": summary(rt_start),
            "terminal_open_to_prompt_ms": summary(term_ms),
            "agent_start_to_ready_in_running_sandbox_ms": summary(agent_ready),
            "sandbox_exec_python3_S_pass_ms": summary(py_pass),
        },
    }


def cpu_ms(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env=env, check=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000)
    return out


def interpreter(runs: int) -> dict[str, object]:
    pkg = Path(agent_package_copy(Path(tempfile.mkdtemp(prefix="cc-bench-pkg-", dir="/tmp"))))
    env = {"PYTHONPATH": str(pkg.parent), "PATH": "/usr/bin:/bin"}
    agent, bare = [], []
    code = "import sys; sys.modules['ssl'] = None; import coolcoding.agent.__main__"
    for _ in range(runs):  # interleaved
        agent += cpu_ms(["/usr/bin/python3", "-S", "-c", code], env, 1)
        bare += cpu_ms(["/usr/bin/python3", "-S", "-c", "pass"], env, 1)
    return {"agent_imports_cpu_ms": summary(agent, 1), "python3_S_pass_cpu_ms": summary(bare, 1),
            "ratio_to_floor": ratio(agent, bare)}  # fmt: skip


def smaps(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
    return out


def cgroup_kb(cg: Cgroup) -> dict[str, float]:
    """Kernel-counted memory of the cgroup, and PSS / private dirty of its processes (KiB)."""
    name = "memory.usage_in_bytes" if cg.version == 1 else "memory.current"
    usage = int((cg.dirs["memory"] / name).read_text()) // 1024
    procs = [smaps(pid) for pid in cg.pids()]
    return {
        "cgroup_kb": usage,
        "pss_kb": sum(p.get("Pss", 0) for p in procs),
        "private_dirty_kb": sum(p.get("Private_Dirty", 0) for p in procs),
        "processes": len(procs),
    }


async def idle_sessions(rt: LocalRuntime, n: int) -> dict[str, object]:
    held: list[tuple[LocalSandbox, Terminal, FloorShell]] = []
    try:
        for _ in range(n):
            sb = await rt.start(new_spec(**spec_kw()))
            assert isinstance(sb, LocalSandbox)
            term = await agent_prompt(sb)
            floor = await FloorShell.open(sb)
            await floor.until_prompt()
            held.append((sb, term, floor))
        await asyncio.sleep(3)  # idle
        ours: dict[str, list[float]] = {}
        floors: dict[str, list[float]] = {}
        agent_priv: list[float] = []
        for sb, _, floor in held:
            assert sb.agent is not None and sb.agent.process is not None
            for k, v in cgroup_kb(sb.agent.process.cgroup).items():
                ours.setdefault(k, []).append(v)
            for k, v in cgroup_kb(floor.cgroup).items():
                floors.setdefault(k, []).append(v)
            if sb.agent.pid is not None:
                agent_priv.append(smaps(sb.agent.pid).get("Private_Dirty", 0))
        per = {k: pct(v, 50) for k, v in ours.items()}
        per_floor = {k: pct(v, 50) for k, v in floors.items()}
        return {
            "sessions": n,
            "per_session_median_kb": per,
            "floor_per_session_median_kb": per_floor,
            "agent_process_private_dirty_kb": summary(agent_priv, 0),
            "sessions_per_gib_by_cgroup": round(MB / per["cgroup_kb"], 1),
            "floor_sessions_per_gib_by_cgroup": round(MB / per_floor["cgroup_kb"], 1),
            "sessions_per_gib_by_pss": round(MB / per["pss_kb"], 1),
            "floor_sessions_per_gib_by_pss": round(MB / per_floor["pss_kb"], 1),
            "ratio_cgroup_to_floor": round(per["cgroup_kb"] / per_floor["cgroup_kb"], 2),
        }
    finally:
        for sb, term, floor in held:
            with contextlib.suppress(Exception):
                await floor.close()
                await term.close()
            await rt.delete_workspace(sb.spec.session_uuid)


async def run(starts: int, sessions: int) -> dict[str, object]:
    out: dict[str, object] = {"interpreter": interpreter(starts)}
    async with make_runtime(sandbox_pool_size=0, sandbox_session_pool_size=1) as rt:
        rt.keep_session_pool(new_spec(**spec_kw(), session_uuid="pool"))
        base = await rt.start(new_spec(**spec_kw()))
        assert isinstance(base, LocalSandbox)
        out["start"] = await start_rounds(rt, base, starts)
        if sessions > 0:
            out["idle"] = await idle_sessions(rt, sessions)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--skip-idle", action="store_true", help="start figures only")
    args = ap.parse_args()
    results = asyncio.run(run(args.starts, 0 if args.skip_idle else args.sessions))
    for group, values in results.items():
        print(f"[{group}]")
        for k, v in values.items():  # type: ignore[attr-defined]
            print(f"  {k:<44} {v}")
    write_result("agent_scale_start" if args.skip_idle else "agent_scale", {
        "starts": args.starts, "sessions": args.sessions, "load_avg_at_end": os.getloadavg(),
        "targets": {"start_to_prompt_p50_ms": 50, "idle_sessions_with_terminal": 1000},
        "results": results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
