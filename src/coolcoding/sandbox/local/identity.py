"""This server's persistent identity: what it created on the host is named after it.

Two servers on one host (a test instance beside production, two replicas with their own data
dirs) share the cgroup parent name by default; each keeps its sandboxes' cgroups under
``<parent>/<server id>`` and its start-up orphan cleanup touches that subtree only, so neither
ever kills the other's sandboxes. The id is random, made once and kept in
``<data_dir>/server-id``: a restart (or a second process on the same data dir) is the same
owner and finds its leftovers again.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from coolcoding.sandbox.base import SandboxError

SERVER_ID_FILE = "server-id"
_VALID = re.compile(r"^srv-[0-9a-f]{12}$")


def server_id(data_dir: Path) -> str:
    """The id stored in ``data_dir`` (created on first use, atomically: concurrent first starts
    agree on one)."""
    path = data_dir / SERVER_ID_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    new = f"srv-{secrets.token_hex(6)}"
    tmp = data_dir / f".{SERVER_ID_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        tmp.write_text(new + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # fails if another process made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    found = path.read_text().strip()
    if not _VALID.match(found):
        raise SandboxError(
            "server_id",
            "Sandboxes are not available on this server.",
            f"{path} holds {found[:40]!r}, not a server id (srv- and 12 hex digits): "
            "restore it, or delete it if no sandbox of this data dir is running",
        )
    return found
