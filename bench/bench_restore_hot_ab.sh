#!/bin/sh
# Restore/snapshot of 10,000 files, this build vs fa90ad1 (migration 0013: HOT content updates on
# PostgreSQL), alternated in one run: round 1 old then new, round 2 new then old, each variant in
# its own process (bench_history.py's snapshot_10k; the listing floor in the same process).
#   git -C /work/main archive fa90ad1 src | tar -x -C /tmp/restore-base
#   sh bench/bench_restore_hot_ab.sh /tmp/restore-base/src [postgres,sqlite] [result prefix]
set -e
OLD=${1:?old src dir}
BACKENDS=${2:-postgres}
PREFIX=${3:-restore_hot}
cd "$(dirname "$0")/.."
for b in $(echo "$BACKENDS" | tr , ' '); do
  for r in 1 2; do
    if [ "$r" = 1 ]; then order="old new"; else order="new old"; fi
    for v in $order; do
      echo "== $b round $r $v, load $(cat /proc/loadavg)"
      if [ "$v" = old ]; then
        PYTHONPATH="$OLD" .venv/bin/python bench/bench_history.py --skip-load --skip-storage --runs 5 \
          --snapshot-backends "$b" --out "${PREFIX}_${b}_${v}_r${r}"
      else
        .venv/bin/python bench/bench_history.py --skip-load --skip-storage --runs 5 \
          --snapshot-backends "$b" --out "${PREFIX}_${b}_${v}_r${r}"
      fi
    done
  done
done
