"""Start-up cost of a network-enabled sandbox (own network namespace + slirp4netns, issue 12)
against a network-off one, interleaved in the same run on this host.

Each sample starts a fresh session sandbox (``Runtime.start``: cgroups, /etc, and with network
the namespace, its routes and slirp4netns) and runs its first program: ``/bin/true`` through
``Sandbox.exec`` ("exec"), or a login shell until its first prompt ("prompt"). The sandbox is
then stopped (timed apart: with network it also stops slirp4netns). The order of the two kinds
alternates every round, so drift on the host hits both alike.

Writes bench/results/sandbox_network.json. Run as root:
``.venv/bin/python bench/bench_sandbox_network.py [runs]`` (default 60 of each).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from benchstats import summary
from coolcoding.sandbox.base import SandboxSpec
from coolcoding.sandbox.local.runtime import LocalRuntime
from sandboxruntime import bench_runtime, host_facts, write_figures

MARK = b"<CC-PROMPT>"


async def first_exec(rt: LocalRuntime, network: bool) -> tuple[float, float]:
    spec = SandboxSpec(session_uuid=str(uuid.uuid4()), network=network)
    t = time.perf_counter()
    sb = await rt.start(spec)
    r = await sb.exec(["/bin/true"])
    started = (time.perf_counter() - t) * 1000
    assert r.exit_code == 0, r
    t = time.perf_counter()
    await rt.stop(spec.session_uuid)
    return started, (time.perf_counter() - t) * 1000


async def first_prompt(rt: LocalRuntime, network: bool) -> float:
    spec = SandboxSpec(session_uuid=str(uuid.uuid4()), network=network)
    t = time.perf_counter()
    sb = await rt.start(spec)
    term = await sb.open_terminal(80, 24, env={"PROMPT_COMMAND": "printf '<CC-%s>' PROMPT"})
    out = b""
    while MARK not in out:
        out += await asyncio.wait_for(term.read(), 10)
    started = (time.perf_counter() - t) * 1000
    await term.close()
    await rt.stop(spec.session_uuid)
    return started


async def main(runs: int) -> None:
    samples: dict[str, list[float]] = {
        f"{what}_{kind}_ms": []
        for what in ("start_to_exec", "start_to_prompt", "stop")
        for kind in ("network_off", "network_on")
    }
    async with bench_runtime(sandbox_pool_size=0, sandbox_disk_check_interval_s=0) as rt:
        for warm in (False, True):  # one unmeasured round: templates, page cache
            await first_exec(rt, warm)
        for i in range(runs):
            order = (False, True) if i % 2 == 0 else (True, False)
            for network in order:
                kind = "network_on" if network else "network_off"
                started, stopped = await first_exec(rt, network)
                samples[f"start_to_exec_{kind}_ms"].append(started)
                samples[f"stop_{kind}_ms"].append(stopped)
            for network in order:
                kind = "network_on" if network else "network_off"
                samples[f"start_to_prompt_{kind}_ms"].append(await first_prompt(rt, network))

    results = {name: summary(xs) for name, xs in samples.items()}

    def ratio(what: str, p: str) -> float:
        on, off = results[f"{what}_network_on_ms"][p], results[f"{what}_network_off_ms"][p]
        return round(on / off, 2)

    ratios = {
        what: {"p50": ratio(what, "p50"), "p99": ratio(what, "p99")}
        for what in ("start_to_exec", "start_to_prompt", "stop")
    }
    print(f"{'measure':34s} {'p50':>8s} {'p99':>8s} {'min':>8s}  (ms, {runs} runs each)")
    for name, s in results.items():
        print(f"{name:34s} {s['p50']:8.2f} {s['p99']:8.2f} {s['min']:8.2f}")
    for what, r in ratios.items():
        print(f"ratio network on/off {what:14s} p50 {r['p50']:.2f}x  p99 {r['p99']:.2f}x")
    out = {
        "runs": runs,
        "host": host_facts(rt),
        "results": results,
        "ratio_network_on_over_off": ratios,
    }
    write_figures("sandbox_network", out)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 60))
