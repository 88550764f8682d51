"""Cost of the kernel-enforced disk quota (a loop-mounted ext4 image per workspace), in one run.

Two runtimes side by side, rounds interleaved: ``image`` (the default) and ``measured`` (the
workspace a plain directory of the host's data disk, the watcher off), same quota.
- write: ``dd`` of 100 MiB with ``conv=fsync`` inside the sandbox, timed inside it (MB/s)
- small files: 2,000 files of 4 KiB written by one Python process inside the sandbox (files/s)
- start: ``Runtime.start`` of a new session (the image is made: mkfs) and a restart of a stopped
  one (e2fsck -p + mount), each followed by stop; the plain directory's as the peer.

Target: write throughput within 10 % of the plain directory. Writes bench/results/disk_quota.json.
Run as root: ``.venv/bin/python bench/bench_disk_quota.py [--rounds 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from benchstats import pct, summary
from coolcoding.sandbox.base import ExecLimits, Sandbox, SandboxSpec
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.settings import Settings

MiB = 1024 * 1024
QUOTA = 200 * MiB
DD = (
    "s=$(date +%s%N); dd if=/dev/zero of=f bs=1M count=100 conv=fsync 2>/dev/null; "
    "e=$(date +%s%N); rm -f f; echo $((e-s))"
)
SMALL = (
    "import os, time\n"
    "os.mkdir('d'); data = b'x' * 4096; t = time.perf_counter_ns()\n"
    "for i in range(2000):\n"
    "    with open(f'd/{i}', 'wb') as f: f.write(data)\n"
    "print(time.perf_counter_ns() - t)\n"
    "for i in range(2000): os.unlink(f'd/{i}')\n"
    "os.rmdir('d')\n"
)


def paired(per: dict[str, list[float]]) -> dict[str, float]:
    """Median and 10th/90th percentiles of image/plain, round by round."""
    r = [i / m for i, m in zip(per["image"], per["measured"], strict=True)]
    return {"p50": round(statistics.median(r), 3), "p10": round(pct(r, 10), 3),
            "p90": round(pct(r, 90), 3)}  # fmt: skip


def make_runtime(base: Path, quota: str) -> LocalRuntime:
    settings = Settings(
        data_dir=base / quota,
        sandbox_cgroup_parent=f"coolcoding-bench-{quota}-{os.getpid()}",
        sandbox_disk_quota=quota,  # type: ignore[arg-type]
        sandbox_disk_check_interval_s=0,  # measured: the watcher off, only the file system
        sandbox_pool_size=0,
        max_workspace_bytes=QUOTA,
    )
    return LocalRuntime(settings)


def spec(name: str) -> SandboxSpec:
    return SandboxSpec(session_uuid=name, disk_bytes=QUOTA, memory_mb=512)


async def timed_ns(sb: Sandbox, argv: list[str]) -> float:
    r = await sb.exec(argv, limits=ExecLimits(wall_s=60))
    assert r.exit_code == 0, r
    return int(r.stdout.split()[-1])


async def main(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cc-bench-quota-", dir="/tmp"))
    os.chmod(base, 0o711)
    runtimes = {q: make_runtime(base, q) for q in ("image", "measured")}
    mbps: dict[str, list[float]] = {q: [] for q in runtimes}
    files_s: dict[str, list[float]] = {q: [] for q in runtimes}
    first: dict[str, list[float]] = {q: [] for q in runtimes}
    restart: dict[str, list[float]] = {q: [] for q in runtimes}
    try:
        boxes = {q: await rt.start(spec(f"bench-{q}")) for q, rt in runtimes.items()}
        for sb in boxes.values():  # warm-up, not counted
            await timed_ns(sb, ["sh", "-c", DD])
            await timed_ns(sb, ["python3", "-c", SMALL])
        for i in range(rounds):
            order = list(runtimes) if i % 2 == 0 else list(reversed(runtimes))
            for q in order:
                ns = await timed_ns(boxes[q], ["sh", "-c", DD])
                mbps[q].append(100 * MiB / (ns / 1e9) / 1e6)
            for q in order:
                ns = await timed_ns(boxes[q], ["python3", "-c", SMALL])
                files_s[q].append(2000 / (ns / 1e9))
        for i in range(2 * rounds):
            order = list(runtimes) if i % 2 == 0 else list(reversed(runtimes))
            for q in order:
                rt, name = runtimes[q], f"start-{uuid.uuid4().hex[:12]}"
                t = time.perf_counter()
                await rt.start(spec(name))
                first[q].append((time.perf_counter() - t) * 1000)
                await rt.stop(name)
                t = time.perf_counter()
                await rt.start(spec(name))
                restart[q].append((time.perf_counter() - t) * 1000)
                await rt.delete_workspace(name)
    finally:
        for rt in runtimes.values():
            await rt.shutdown()
            for d in set(rt.host.cgroups.bases.values()):
                if d.is_dir():
                    os.rmdir(d)
        shutil.rmtree(base, ignore_errors=True)

    results = {
        "dd_100MiB_fsync_MBps": {q: summary(v) for q, v in mbps.items()},
        "small_files_4KiB_per_s": {q: summary(v) for q, v in files_s.items()},
        "first_start_ms": {q: summary(v) for q, v in first.items()},
        "restart_ms": {q: summary(v) for q, v in restart.items()},
    }
    ratios = {
        "dd_image_over_plain_p50": round(
            statistics.median(mbps["image"]) / statistics.median(mbps["measured"]), 3
        ),
        "small_files_image_over_plain_p50": round(
            statistics.median(files_s["image"]) / statistics.median(files_s["measured"]), 3
        ),
        # Each round's two measurements ran back to back: their ratio shares the host's load.
        "dd_paired_ratio": paired(mbps),
        "small_files_paired_ratio": paired(files_s),
    }
    print(f"{'measure':26s} {'quota':9s} {'p50':>9s} {'p99':>9s} {'min':>9s} {'max':>9s}")
    for name, per in results.items():
        for q, s in per.items():
            print(f"{name:26s} {q:9s} {s['p50']:9.2f} {s['p99']:9.2f} {s['min']:9.2f} "
                  f"{s['max']:9.2f}")  # fmt: skip
    for name, r in ratios.items():
        print(f"{name:34s} {r}")
    out = {
        "rounds": rounds,
        "quota_bytes": QUOTA,
        "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "peer": "measured = the workspace as a plain directory on the host's data disk",
        "target": "write throughput (image) >= 0.9 x plain",
        "results": results,
        "ratios": ratios,
    }
    path = Path(__file__).parent / "results" / "disk_quota.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    asyncio.run(main(ap.parse_args().rounds))
