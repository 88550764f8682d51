"""Test durations of this checkout against a previous build's tests, interleaved (base, new,
base, new, ...): each round runs the given pytest arguments in both trees and keeps every test's
call time and the total, with the load average before each run. Figures are medians and ratios
new/base of the same rounds (the machine is shared: absolute times are noisy).

    git -C . archive fa90ad1 src tests pyproject.toml | tar -x -C /tmp/base-tree
    .venv/bin/python bench/bench_test_durations.py --base /tmp/base-tree --rounds 3 \
        --out test_durations_kill -- tests/integration/test_history_crash.py

The base tree runs with its own src on PYTHONPATH, this checkout with its own."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALL = re.compile(r"^([\d.]+)s call\s+(\S+)$", re.M)
TOTAL = re.compile(r" in ([\d.]+)s")


def run(tree: Path, args: list[str], tag: str) -> dict[str, object]:
    load = Path("/proc/loadavg").read_text().split()[:3]
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0",
         f"--basetemp=/tmp/bench-durations-{tag}", *args],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree / "src")},
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    wall = time.monotonic() - start
    total = TOTAL.findall(out)
    return {
        "load": load,
        "wall_s": round(wall, 2),
        "pytest_s": float(total[-1]) if total else None,
        "passed": "failed" not in out.splitlines()[-1] if out else False,
        "calls": {name: float(t) for t, name in CALL.findall(out)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="the previous build's tree")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True, help="results/<out>.json")
    ap.add_argument("pytest_args", nargs="+")
    a = ap.parse_args()
    runs: dict[str, list[dict[str, object]]] = {"base": [], "new": []}
    for r in range(a.rounds):
        for side, tree in (("base", a.base), ("new", ROOT)):
            res = run(tree, a.pytest_args, side)
            runs[side].append(res)
            print(side, r + 1, res["load"], res["pytest_s"], flush=True)
    summary: dict[str, dict[str, float]] = {}
    names = set().union(*(set(x["calls"]) for x in runs["base"] + runs["new"]))  # type: ignore[arg-type]
    for name in [*sorted(names), "TOTAL"]:
        vals = {}
        for side in ("base", "new"):
            if name == "TOTAL":
                xs = [float(x["pytest_s"]) for x in runs[side] if x["pytest_s"] is not None]  # type: ignore[arg-type]
            else:
                xs = [x["calls"][name] for x in runs[side] if name in x["calls"]]  # type: ignore[index,operator]
            vals[side] = statistics.median(xs) if xs else float("nan")
        summary[name] = {**vals, "ratio": round(vals["new"] / vals["base"], 2)}
        print(
            f"{name}: base {vals['base']:.2f} s, new {vals['new']:.2f} s, x{summary[name]['ratio']}"
        )
    out = ROOT / "bench" / "results" / f"{a.out}.json"
    out.write_text(json.dumps({"args": a.pytest_args, "runs": runs, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
