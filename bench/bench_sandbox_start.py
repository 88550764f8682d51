"""Sandbox start-up costs of the local runtime, measured in one run on this host.

- shell: cold start of a terminal until bash prints its first prompt (marker via PROMPT_COMMAND)
- floor: a bare ``bwrap --unshare-all ... true`` as the same unprivileged uid (bwrap's own cost)
- exec: ``/bin/true`` through ``Sandbox.exec`` (cgroup per exec, limits, accounting) versus an
  unsandboxed ``asyncio`` subprocess.

Targets: shell p50 < 50 ms, p99 < 150 ms; exec overhead < 10 ms. Writes bench/results/sandbox_start.json.
Run as root: ``.venv/bin/python bench/bench_sandbox_start.py [runs]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

from benchstats import summary
from coolcoding.sandbox.base import SandboxSpec
from sandboxruntime import bare_bwrap_true_ms, bench_runtime, host_facts, write_figures

MARK = b"<CC-PROMPT>"


async def main(runs: int) -> None:
    results: dict[str, dict[str, float]] = {}
    async with bench_runtime() as rt:
        settings = rt.settings
        sb = await rt.start(SandboxSpec(session_uuid=str(uuid.uuid4())))
        uid, gid = sb.creds.uid, sb.creds.gid  # type: ignore[attr-defined]

        shell: list[float] = []
        for _ in range(runs):
            t = time.perf_counter()
            term = await sb.open_terminal(80, 24, env={"PROMPT_COMMAND": "printf '<CC-%s>' PROMPT"})
            out = b""
            while MARK not in out:
                out += await asyncio.wait_for(term.read(), 5)
            shell.append((time.perf_counter() - t) * 1000)
            await term.close()
        results["shell_to_prompt_ms"] = summary(shell)

        floor = [bare_bwrap_true_ms(settings.sandbox_bwrap_path, uid, gid) for _ in range(runs)]
        results["bare_bwrap_true_ms"] = summary(floor)

        sandboxed: list[float] = []
        plain: list[float] = []
        for _ in range(runs):
            t = time.perf_counter()
            r = await sb.exec(["/bin/true"])
            sandboxed.append((time.perf_counter() - t) * 1000)
            assert r.exit_code == 0, r
            t = time.perf_counter()
            p = await asyncio.create_subprocess_exec("/bin/true")
            await p.wait()
            plain.append((time.perf_counter() - t) * 1000)
        results["exec_true_sandboxed_ms"] = summary(sandboxed)
        results["exec_true_unsandboxed_ms"] = summary(plain)
        results["exec_overhead_p50_ms"] = {
            "p50": round(statistics.median(sandboxed) - statistics.median(plain), 2)
        }

    print(f"{'measure':28s} {'p50':>8s} {'p99':>8s} {'min':>8s}  (ms, {runs} runs)")
    for name, s in results.items():
        print(f"{name:28s} {s['p50']:8.2f} {s.get('p99', float('nan')):8.2f} "
              f"{s.get('min', float('nan')):8.2f}")  # fmt: skip
    out = {
        "runs": runs,
        "host": host_facts(rt),
        "targets": {"shell_p50_ms": 50, "shell_p99_ms": 150, "exec_overhead_ms": 10},
        "results": results,
    }
    write_figures("sandbox_start", out)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
