"""What reclaiming a dead ``serve --workers``'s leftovers adds to a ``coolcoding serve`` start
(modeswitch.py): start-to-healthy of ``coolcoding serve`` on a data dir whose ``workers/0`` a
SIGKILLed process left with ``--sandboxes`` running session sandboxes (processes, cgroups,
mounted workspace images), against the same start on a clean data dir, interleaved round by
round (SQLite, pools off in both so that only the reclaim differs).

    .venv/bin/python bench/bench_modeswitch_reclaim.py --rounds 10 --sandboxes 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from benchstats import ratio, summary
from ccserver import ROOT, write_result

COOLCODING = ROOT / ".venv" / "bin" / "coolcoding"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _make_leftovers(data_dir: Path, n: int) -> None:
    """(In the helper process.) ``n`` running session sandboxes of the server of ``data_dir``,
    then wait to be SIGKILLed."""
    from coolcoding.sandbox.base import SandboxSpec
    from coolcoding.sandbox.local.runtime import LocalRuntime
    from coolcoding.settings import Settings

    rt = LocalRuntime(Settings(data_dir=data_dir))
    for _ in range(n):
        await rt.start(SandboxSpec(session_uuid=str(uuid.uuid4())))
    print("ready", flush=True)
    await asyncio.sleep(3600)


def leftovers(env: dict[str, str], data: Path, n: int) -> None:
    wdir = data / "workers" / "0"
    wdir.mkdir(parents=True)
    p = subprocess.Popen(
        [sys.executable, __file__, "--make-leftovers", str(wdir), "--sandboxes", str(n)],
        env=env,
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n", "the leftovers' helper failed"
    p.send_signal(signal.SIGKILL)
    p.wait()


def start_ms(env: dict[str, str], data: Path) -> float:
    """``coolcoding serve`` from exec to its first 200 on /api/health/, in ms; then SIGTERM."""
    port = _free_port()
    env = {**env, "COOLCODING_DATA_DIR": str(data)}
    argv = [str(COOLCODING), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (data / "serve.log").open("wb")
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=2).status_code == 200:
                    return (time.perf_counter() - t) * 1000
            except httpx.HTTPError:
                pass
            if p.poll() is not None:
                raise RuntimeError((data / "serve.log").read_text()[-2000:])
            time.sleep(0.01)
    finally:
        p.terminate()
        p.wait(timeout=60)


def _reap(parent: str, base: Path) -> None:
    for h in Path("/sys/fs/cgroup").iterdir():
        tree = h / parent
        if not tree.is_dir():
            continue
        for procs in tree.rglob("cgroup.procs"):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
        for d in sorted((q for q in tree.rglob("*") if q.is_dir()), key=lambda q: -len(q.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            tree.rmdir()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        if line.split()[1].startswith(str(base)):
            subprocess.run(["umount", "-l", line.split()[1]], check=False)
    shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--sandboxes", type=int, default=2)
    ap.add_argument("--make-leftovers", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_leftovers is not None:
        asyncio.run(_make_leftovers(args.make_leftovers, args.sandboxes))
        return
    base = Path(tempfile.mkdtemp(prefix="cc-bench-switch-", dir="/tmp"))
    os.chmod(base, 0o711)
    parent = f"coolcoding-bench-switch-{os.getpid()}-{secrets.token_hex(2)}"
    env = {
        **os.environ,
        "COOLCODING_ENVIRONMENT": "test",
        "COOLCODING_SANDBOX_CGROUP_PARENT": parent,
        "COOLCODING_SANDBOX_POOL_SIZE": "0",
        "COOLCODING_SANDBOX_SESSION_POOL_SIZE": "0",
    }
    env.pop("COOLCODING_DATABASE_URL", None)
    env.pop("COOLCODING_REDIS_URL", None)
    xs: dict[str, list[float]] = {"clean": [], "leftovers": []}
    try:
        for r in range(args.rounds):
            order = ["clean", "leftovers"] if r % 2 == 0 else ["leftovers", "clean"]
            for arm in order:
                data = base / f"{arm}-{r}"
                data.mkdir()
                if arm == "leftovers":
                    leftovers(env, data, args.sandboxes)
                xs[arm].append(start_ms(env, data))
                if arm == "leftovers":  # the reclaim really happened
                    wdir = data / "workers" / "0" / "workspaces"
                    mounted = [ln for ln in Path("/proc/self/mounts").read_text().splitlines()
                               if str(wdir) in ln]  # fmt: skip
                    assert not mounted, mounted
            print(f"round {r}: clean {xs['clean'][-1]:.0f} ms, "
                  f"leftovers {xs['leftovers'][-1]:.0f} ms", flush=True)  # fmt: skip
    finally:
        _reap(parent, base)
    result = {
        "what": "coolcoding serve start-to-healthy, ms: clean data dir vs one whose workers/0 "
        f"a SIGKILLed process left with {args.sandboxes} running sandboxes (reclaimed at start)",
        "rounds": args.rounds,
        "sandboxes": args.sandboxes,
        "cpus": os.cpu_count(),
        "clean_ms": summary(xs["clean"], 1),
        "leftovers_ms": summary(xs["leftovers"], 1),
        "ratio_leftovers_vs_clean": ratio(xs["leftovers"], xs["clean"]),
    }
    write_result("modeswitch_reclaim", result)
    print(result)


if __name__ == "__main__":
    main()
