"""npm's download cache shared between the sessions of a host, without a session being able to
write (poison) what another reads.

npm keeps one cache folder (cacache): ``_cacache/content-v2/sha512/ab/cd/<rest>`` holds each
downloaded tarball under its own SHA-512, ``index-v5`` maps URLs to digests. npm looks a tarball
up by digest (the integrity the registry or the lockfile gives) and must be able to write the
folder (a read-only cache makes every install of a new package fail: tested with npm 11), so the
shared store cannot simply be bound read-only as the cache.

Instead:
- the shared store is ``<package_cache_dir>/npm/_cacache/content-v2`` on the host, bound
  read-only into every sandbox at ``SHARED_NPM``;
- each session's own cache is private and writable; :func:`link_shared` fills its
  ``content-v2`` with symbolic links to the shared blobs, so ``npm install`` of a package
  another session downloaded reads it from there (no download); new downloads land in the
  private cache;
- :func:`promote` (the host, trusted) copies the private cache's new blobs into the shared
  store, each only after checking that the SHA-512 of the bytes it copied is the one its path
  names. The local runtime does so for every running sandbox every
  ``package_cache_promote_interval_s`` and when a sandbox stops (:func:`promote_from_sandbox`:
  the private cache is in the sandbox's home tmpfs, reached through ``/proc/PID/root``).
  Everything below the cache folder belongs to the session: it is opened one component at a
  time, never through a link (no race between a check and the open); a blob must be a regular
  file with one link, at most ``package_cache_max_blob_bytes``, and is hashed as copied (a file
  changed during the copy fails the check). A blob can only
  ever be found by its own digest, so a session cannot plant content for a name: a file whose
  hash differs from its path, a symbolic link, anything outside ``content-v2/sha512`` (the
  index, which maps names to digests) is never copied.

Not covered: the Kubernetes runtime (its sandboxes' homes are in pods; nothing promotes there).
The operator may fill the store too: ``npm cache add express@4 --cache DIR/npm``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coolcoding.sandbox.nofollow import copy_capped, open_dir, open_regular

SHARED_NPM = "/opt/package-cache/npm"
CONTENT = Path("_cacache") / "content-v2" / "sha512"
# Rewritten in the store whenever blobs were promoted: running agents link the new ones.
MARKER = ".promoted"
RELINK_POLL_S = 2.0
# Largest blob promoted (a tarball); bigger ones stay private.
MAX_BLOB_BYTES = 256 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


@dataclass
class PromoteResult:
    promoted: int = 0
    already: int = 0
    rejected: int = 0
    bytes: int = 0


def _blob_name_ok(a: str, b: str, rest: str) -> bool:
    name = a + b + rest
    return len(a) == 2 and len(b) == 2 and len(name) == 128 and set(name) <= _HEX


def shared_content(package_cache_dir: str) -> Path | None:
    """The host's shared store, or None when not configured (``package_cache_dir/npm``)."""
    if not package_cache_dir:
        return None
    root = Path(package_cache_dir) / "npm"
    return root if root.is_dir() else None


def link_shared(private_cache: Path, shared_host: Path, shared_in_sandbox: str) -> int:
    """Fill ``private_cache``'s content folder with links to every shared blob (their targets
    are read-only in the sandbox). Returns how many links were made."""
    src = shared_host / CONTENT
    if not src.is_dir():
        return 0
    made = 0
    for a in os.listdir(src):
        for b in os.listdir(src / a) if (src / a).is_dir() else ():
            for rest in os.listdir(src / a / b):
                if not _blob_name_ok(a, b, rest):
                    continue
                dest = private_cache / CONTENT / a / b
                dest.mkdir(parents=True, exist_ok=True)
                link = dest / rest
                if not os.path.lexists(link):
                    os.symlink(f"{shared_in_sandbox}/{CONTENT}/{a}/{b}/{rest}", link)
                    made += 1
    return made


def promote(
    private_cache: Path,
    shared_host: Path,
    *,
    max_blob_bytes: int = MAX_BLOB_BYTES,
    max_total_bytes: int | None = None,
) -> PromoteResult:
    """Copy the private cache's verified blobs into the shared store (the host's side: the
    private cache is the session's, untrusted). ``private_cache`` itself is trusted as a path;
    everything below it is opened one component at a time without following links."""
    try:
        fd = os.open(private_cache, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return PromoteResult()
    try:
        result = _promote_fd(fd, CONTENT.parts, shared_host, max_blob_bytes, max_total_bytes)
    finally:
        os.close(fd)
    _mark(shared_host, result)
    return result


def promote_from_sandbox(
    pid: int,
    home: str,
    shared_host: Path,
    *,
    still_ours: Callable[[], bool] = lambda: True,
    max_blob_bytes: int = MAX_BLOB_BYTES,
    max_total_bytes: int | None = None,
) -> PromoteResult:
    """:func:`promote` from the npm cache (``<home>/.npm``) of a running sandbox, reached
    through its process ``pid``'s root (``/proc/PID/root``, the sandbox's own mounts: its home
    is a tmpfs only it sees); ``still_ours`` tells whether ``pid`` is still that sandbox's
    process. Every component below that root, the home's included, is opened
    without following links: an absolute link there would resolve on the host."""
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return PromoteResult()
    try:
        # Checked after the open: the folder held is that of the process still at ``pid`` (a
        # recycled pid would be another process's root, the host's even).
        if not still_ours():
            return PromoteResult()
        parts = (*Path(home.strip("/")).parts, ".npm", *CONTENT.parts)
        result = _promote_fd(fd, parts, shared_host, max_blob_bytes, max_total_bytes)
    finally:
        os.close(fd)
    _mark(shared_host, result)
    return result


def _mark(shared_host: Path, result: PromoteResult) -> None:
    """Tell running sandboxes' agents that the store has new blobs (their links are made by
    them, in their own home)."""
    if result.promoted:
        tmp = shared_host / f"{MARKER}.{os.getpid()}.tmp"
        tmp.write_text(f"{time.time_ns()}\n")
        os.chmod(tmp, 0o444)
        os.replace(tmp, shared_host / MARKER)


def _promote_fd(
    root_fd: int,
    parts: tuple[str, ...],
    shared_host: Path,
    max_blob_bytes: int,
    max_total_bytes: int | None,
) -> PromoteResult:
    result = PromoteResult()
    fds: list[int] = []
    try:
        cur = root_fd
        for part in parts:
            nxt = open_dir(part, cur)
            if nxt is None:
                return result
            fds.append(nxt)
            cur = nxt
        dest_root = shared_host / CONTENT
        budget = max_total_bytes
        for a in sorted(os.listdir(cur)):
            fa = open_dir(a, cur) if len(a) == 2 else None
            if fa is None:
                result.rejected += 1
                continue
            try:
                for b in sorted(os.listdir(fa)):
                    fb = open_dir(b, fa) if len(b) == 2 else None
                    if fb is None:
                        result.rejected += 1
                        continue
                    try:
                        for rest in sorted(os.listdir(fb)):
                            if not _blob_name_ok(a, b, rest):
                                result.rejected += 1
                                continue
                            dest = dest_root / a / b / rest
                            if os.path.lexists(dest):
                                result.already += 1
                                continue
                            cap = max_blob_bytes if budget is None else min(max_blob_bytes, budget)
                            copied = _copy_verified(fb, rest, dest, a + b + rest, cap, shared_host)
                            if copied is None:
                                result.rejected += 1
                                continue
                            result.promoted += 1
                            result.bytes += copied
                            if budget is not None:
                                budget -= copied
                    finally:
                        os.close(fb)
            finally:
                os.close(fa)
    finally:
        for fd in fds:
            os.close(fd)
    return result


def _copy_verified(
    dir_fd: int, name: str, dest: Path, digest: str, cap: int, tmp_dir: Path
) -> int | None:
    """Copy the regular file ``name`` (opened without following a link, one link only, at most
    ``cap`` bytes) to ``dest``, kept only if the SHA-512 of the bytes actually copied is
    ``digest`` (the file may change while it is read). Returns the size, or None."""
    opened = open_regular(dir_fd, name, cap)
    if opened is None:
        return None
    fd, _ = opened
    tmp: str | None = None
    try:
        # The copy is made beside the store (same file system), moved in once verified.
        h = hashlib.sha512()
        tmp = copy_capped(fd, tmp_dir, cap, h)
        if tmp is None or h.hexdigest() != digest:
            return None
        size = os.stat(tmp).st_size
        os.chmod(tmp, 0o444)
        for d in reversed(dest.parents[:5]):  # _cacache/content-v2/sha512/ab/cd
            if not d.is_dir():
                d.mkdir(exist_ok=True)
                os.chmod(d, 0o755)  # noqa: S103 (sandbox uids read the store)
        os.replace(tmp, dest)
        tmp = None
        return size
    except OSError:
        return None
    finally:
        os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def integrity(data: bytes) -> str:
    """npm's ``sha512-<base64>`` integrity string of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
