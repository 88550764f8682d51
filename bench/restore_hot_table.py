"""Table of ``bench_restore_hot_ab.sh``'s results (bench/results/<prefix>_*.json, prefix
``restore_hot`` unless given as the argument): per backend
and build, per round the medians (max) of snapshot, restore where nothing differs and restore
where every file differs, each also as a ratio to the listing floor measured in the same
process; the raw restores of both rounds pooled (median, p99 = max of 10)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(prefix: str = "restore_hot") -> None:
    for backend in ("postgres", "sqlite"):
        for build in ("old", "new"):
            rows = []
            pooled: dict[str, list[float]] = {"nothing": [], "every": []}
            for r in (1, 2):
                f = RESULTS / f"{prefix}_{backend}_{build}_r{r}.json"
                if not f.exists():
                    continue
                d = json.loads(f.read_text())[f"snapshot_{backend}"]
                fl = d["floor_list_10k_ms_median"]
                pooled["nothing"] += d["restore_raw_ms"]
                pooled["every"] += d["restore_all_changed_raw_ms"]
                rows.append(
                    f"  r{r} load {d['loadavg']}: floor {fl:.0f} ms;"
                    f" snapshot {d['snapshot_ms_median']:.0f} ({d['snapshot_ms_max']:.0f})"
                    f" = {d['snapshot_ms_median'] / fl:.2f}x;"
                    f" nothing differs {d['restore_ms_median']:.0f} ({d['restore_ms_max']:.0f})"
                    f" = {d['restore_ms_median'] / fl:.2f}x;"
                    f" every file differs {d['restore_all_changed_ms_median']:.0f}"
                    f" ({d['restore_all_changed_ms_max']:.0f})"
                    f" = {d['restore_all_changed_ms_median'] / fl:.2f}x,"
                    f" index +{d['index_refresh_after_commit_ms_median']:.0f}"
                )
            if not rows:
                continue
            print(f"{backend} {build}")
            print("\n".join(rows))
            for k, v in pooled.items():
                print(
                    f"  pooled {k} differs: median {statistics.median(v):.0f} p99 {max(v):.0f}"
                    f" (n={len(v)})"
                )


if __name__ == "__main__":
    main(*sys.argv[1:2])
