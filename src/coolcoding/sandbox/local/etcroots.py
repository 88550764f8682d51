"""Where a server's generated sandbox ``/etc`` dirs live: a private root per server process in a
tmpfs, named ``cc-etc-<pid>-<server tag>-<random>``, reclaimed when its process is gone (the
dirs of sandboxes that outlived it move into the new process's root first), and claimed by a
replica that takes a sandbox over from a dead one (a rename in the tmpfs keeps the bind).

The root of a dead process of *another* server (a killed server whose data dir never starts
again: its tag never comes back to reclaim it) would stay in the tmpfs, that is in memory, for
as long as the host runs. Any server removes such a root's dirs that no mount on the host has as
its source (a running sandbox's bound /etc stays), and the root once empty; only when the
root's owner file (``OWNER``) proves its process dead: the same pid namespace as ours, and that
pid gone or started at another time. A root without one (an older build's), of another pid
namespace (a server in another container sharing the tmpfs), or whose host mounts cannot all
be read, is left alone."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path

from coolcoding.sandbox.local.pids import pid_alive, start_time

log = logging.getLogger(__name__)

OWNER = ".owner"  # in each root: "<pid namespace inode> <pid> <pid's start time>"


def _pid_namespace() -> int:
    return os.stat("/proc/self/ns/pid").st_ino


def owner_line() -> str:
    return f"{_pid_namespace()} {os.getpid()} {start_time(os.getpid())}\n"


def _owner_dead(root: str) -> bool:
    """Whether the owner file of ``root`` proves its process gone (see the module's doc)."""
    try:
        with open(os.path.join(root, OWNER), "rb") as f:
            pidns, pid, started = (int(x) for x in f.read(100).split())
    except (OSError, ValueError):
        return False
    if pidns != _pid_namespace():
        return False
    return start_time(pid) != started


def mounted_children(tmpfs_dir: str, roots: Collection[str]) -> set[tuple[str, str]] | None:
    """(root, child) of every dir of ``roots`` that a mount in any mount namespace of the host
    has as its source (its root within the tmpfs; ``*`` for the root itself), or None when a
    namespace cannot be read (then nothing may be called unused)."""
    want = os.stat(tmpfs_dir).st_dev
    device = f"{os.major(want)}:{os.minor(want)}"
    names = set(roots)
    seen: set[int] = set()
    used: set[tuple[str, str]] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            # The namespace's inode, to read each one once; a sandbox's processes may not be
            # dumpable (no ptrace access without CAP_SYS_PTRACE): their mountinfo is read then.
            ns = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        except PermissionError:
            ns = None
        except OSError:
            continue  # gone meanwhile
        if ns is not None and ns in seen:
            continue
        try:
            text = Path(f"/proc/{pid}/mountinfo").read_text()
        except PermissionError:
            return None
        except OSError:
            continue
        if ns is not None:
            seen.add(ns)
        for line in text.splitlines():
            fields = line.split(" ", 4)
            if len(fields) < 4 or fields[2] != device:
                continue
            parts = fields[3].split("/")
            for i, part in enumerate(parts):
                if part in names:
                    used.add((part, parts[i + 1] if i + 1 < len(parts) else "*"))
    return used


def _reclaim_foreign(tmpfs_dir: Path, roots: list[str]) -> None:
    """Remove the dirs of dead processes' roots of other servers that nothing has mounted,
    and each root once it is empty (see the module's doc)."""
    used = mounted_children(str(tmpfs_dir), [os.path.basename(r) for r in roots])
    if used is None:
        return
    for root in roots:
        name = os.path.basename(root)
        if (name, "*") in used:
            continue
        with contextlib.suppress(OSError):
            for child in os.listdir(root):
                if child == OWNER or (name, child) in used:
                    continue
                path = os.path.join(root, child)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            if os.listdir(root) == [OWNER]:
                os.unlink(os.path.join(root, OWNER))
                os.rmdir(root)
                log.info("removed %s, the /etc root of another server's dead process", root)


def etc_root_tag(instance_id: str) -> str:
    """A short tag of the server id in its /etc roots' names (only its own are reclaimed)."""
    return hashlib.sha256(instance_id.encode()).hexdigest()[:8]


def reclaim_dead_etc_roots(tmpfs_dir: Path, tag: str, keep: Collection[str], into: Path) -> None:
    """Remove the /etc roots of server processes that are gone (killed, or never shut down).
    The /etc dirs of sandboxes that outlived them (``keep``, this server's) move into ``into``
    first: a rename within the tmpfs keeps the directory the running sandbox has bound."""
    foreign: list[str] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(tmpfs_dir):
            parts = entry.name.split("-")
            if len(parts) not in (4, 5) or parts[:2] != ["cc", "etc"] or not parts[2].isdigit():
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid() or entry.path == str(into):
                continue
            if len(parts) == 5 and parts[3] != tag:
                # Another server's: it reclaims its own sandboxes' /etc when it starts again;
                # a dead process's dirs that nothing has mounted go now (the module's doc).
                if entry.is_dir(follow_symlinks=False):
                    if _owner_dead(entry.path):
                        foreign.append(entry.path)
                    elif not pid_alive(int(parts[2])):
                        # Empty (rmdir fails otherwise): a removal cut short after its owner
                        # file went; no live process makes a root under a dead pid's name.
                        with contextlib.suppress(OSError):
                            os.rmdir(entry.path)
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
    if foreign:
        _reclaim_foreign(tmpfs_dir, foreign)


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
    (path / OWNER).write_text(owner_line())
    return path
