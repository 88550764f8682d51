"""A restore in a child process of its own, for the tests that SIGKILL it at some point: the
child runs ``script`` (``python -c``) with the database URL, data dir, session and snapshot as
arguments, and the source tree of this checkout on its path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from coolcoding.services.workspace import WorkspaceRef

SRC = Path(__file__).resolve().parents[2] / "src"


def start_restore_child(
    script: str, db_url: str, data_dir: Path, ref: WorkspaceRef, snapshot_id: int
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-c", script, db_url, str(data_dir),
        str(ref.session_id), ref.session_uuid, str(snapshot_id),
    ]  # fmt: skip
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)}
    )
