"""Children of their own, for the tests that SIGKILL a restore or a compaction at some point: a
child runs ``script`` (``python -c``) with the test's arguments and the source tree of this
checkout on its path.

A script that prints ``ready`` and then waits for a line on stdin (``GO``) can be started ahead
of time: the kill-at-increasing-delays tests start the next child while they check the state the
previous one left, so its start-up (imports, about a second) is off the test's critical path, and
``release`` starts its work at a known moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from coolcoding.services.workspace import WorkspaceRef

SRC = Path(__file__).resolve().parents[2] / "src"

# What a prestartable script runs between ``print("ready", flush=True)`` and its work: it waits
# for ``go``, and exits doing nothing on anything else (the test ended without releasing it).
GO = 'if sys.stdin.readline() != "go\\n": sys.exit(0)'


def start_child(script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )


def start_restore_child(
    script: str, db_url: str, data_dir: Path, ref: WorkspaceRef, snapshot_id: int
) -> subprocess.Popen[bytes]:
    """The child's arguments: the database URL, data dir, session and snapshot."""
    return start_child(
        script, db_url, str(data_dir), str(ref.session_id), ref.session_uuid, str(snapshot_id)
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ends a child that was not released or has not ended (a failed test)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=60)


def release(proc: subprocess.Popen[bytes]) -> None:
    """Waits for the child's ``ready``, then lets it start its work (a script waiting at GO)."""
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == b"ready"
    proc.stdin.write(b"go\n")
    proc.stdin.close()


def kill_at_delays(
    start: Callable[[], subprocess.Popen[bytes]],
    delays: Sequence[float | None],
    check: Callable[[], None],
) -> None:
    """For each delay a child from ``start`` is released and SIGKILLed ``delay`` seconds later
    (None: it runs to its end), then ``check`` looks at what it left; the next child starts up
    while ``check`` runs."""
    nxt = start()
    try:
        for i, delay in enumerate(delays):
            proc = nxt
            release(proc)
            if delay is not None:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
            if i + 1 < len(delays):
                nxt = start()
            check()
    finally:
        stop(nxt)
