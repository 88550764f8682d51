"""Where a server's generated sandbox ``/etc`` dirs live: a private root per server process in a
tmpfs, named ``cc-etc-<pid>-<server tag>-<random>``, reclaimed when its process is gone (the
dirs of sandboxes that outlived it move into the new process's root first), and claimed by a
replica that takes a sandbox over from a dead one (a rename in the tmpfs keeps the bind)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)


def etc_root_tag(instance_id: str) -> str:
    """A short tag of the server id in its /etc roots' names (only its own are reclaimed)."""
    return hashlib.sha256(instance_id.encode()).hexdigest()[:8]


def reclaim_dead_etc_roots(tmpfs_dir: Path, tag: str, keep: Collection[str], into: Path) -> None:
    """Remove the /etc roots of server processes that are gone (killed, or never shut down).
    The /etc dirs of sandboxes that outlived them (``keep``, this server's) move into ``into``
    first: a rename within the tmpfs keeps the directory the running sandbox has bound."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(tmpfs_dir):
            parts = entry.name.split("-")
            if len(parts) not in (4, 5) or parts[:2] != ["cc", "etc"] or not parts[2].isdigit():
                continue
            if len(parts) == 5 and parts[3] != tag:
                continue  # another server's: it reclaims its own sandboxes' /etc
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid() or entry.path == str(into):
                continue
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                for name in keep:
                    with contextlib.suppress(OSError):
                        if not (into / name).exists():
                            os.rename(Path(entry.path) / name, into / name)
                shutil.rmtree(entry.path, ignore_errors=True)
            except PermissionError:
                continue


def claim_etc_dir(tmpfs_dir: Path, tag: str, session_uuid: str, into: Path) -> None:
    """Move the /etc dir of ``session_uuid`` out of the root of a dead process of the server
    tagged ``tag`` (a sandbox taken over from a dead replica) into ``into``: the rename within
    the tmpfs keeps the directory the running sandbox has bound, and its root's reclaim then
    leaves it alone."""
    if into.exists():
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(tmpfs_dir):
            parts = entry.name.split("-")
            if len(parts) != 5 or parts[:2] != ["cc", "etc"] or parts[3] != tag:
                continue
            src = Path(entry.path) / session_uuid
            if not parts[2].isdigit() or not src.is_dir():
                continue
            try:
                os.kill(int(parts[2]), 0)
                continue  # its process lives: never take a live process's dir
            except ProcessLookupError:
                os.rename(src, into)
                return
            except PermissionError:
                continue


def make_etc_root(tmpfs_dir: Path, state_dir: Path, tag: str) -> Path:
    """A private directory for this runtime's generated /etc dirs, in a tmpfs (default
    /dev/shm): the path of a bind mount's source, relative to its file system, shows in the
    sandbox's /proc/self/mountinfo, and in a tmpfs that is ``/cc-etc-<random>/<name>``, not the
    host's data dir. Falls back to the state dir when ``tmpfs_dir`` is unusable."""
    try:
        path = Path(tempfile.mkdtemp(prefix=f"cc-etc-{os.getpid()}-{tag}-", dir=tmpfs_dir))
    except OSError as e:
        log.warning("sandbox /etc dirs under %s (%s is not usable: %s)", state_dir, tmpfs_dir, e)
        state_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="etc-", dir=state_dir))
    os.chmod(path, 0o711)  # noqa: S103 (search only: bwrap resolves it as the sandbox uid)
    return path
