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
  store, each only after checking that its SHA-512 is the one its path names. A blob can only
  ever be found by its own digest, so a session cannot plant content for a name: a file whose
  hash differs from its path, a symbolic link, anything outside ``content-v2/sha512`` (the
  index, which maps names to digests) is never copied.

The operator may fill the store too: ``npm cache add express@4 --cache DIR/npm``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

SHARED_NPM = "/opt/package-cache/npm"
CONTENT = Path("_cacache") / "content-v2" / "sha512"
# Largest blob promoted (a tarball); bigger ones stay private.
MAX_BLOB_BYTES = 256 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


@dataclass
class PromoteResult:
    promoted: int = 0
    already: int = 0
    rejected: int = 0


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


def promote(private_cache: Path, shared_host: Path) -> PromoteResult:
    """Copy the private cache's verified blobs into the shared store (the host's side: the
    private cache is the session's, untrusted)."""
    result = PromoteResult()
    src = private_cache / CONTENT
    if not src.is_dir() or src.is_symlink():
        return result
    dest_root = shared_host / CONTENT
    for a in sorted(os.listdir(src)):
        pa = src / a
        if pa.is_symlink() or not pa.is_dir():
            continue
        for b in sorted(os.listdir(pa)):
            pb = pa / b
            if pb.is_symlink() or not pb.is_dir():
                continue
            for rest in sorted(os.listdir(pb)):
                if not _blob_name_ok(a, b, rest):
                    result.rejected += 1
                    continue
                dest = dest_root / a / b / rest
                if dest.exists():
                    result.already += 1
                    continue
                data = _read_regular(pb / rest)
                if data is None or hashlib.sha512(data).hexdigest() != a + b + rest:
                    result.rejected += 1
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                tmp = dest.parent / f".{rest}.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.chmod(tmp, 0o444)
                os.replace(tmp, dest)
                result.promoted += 1
    return result


def _read_regular(path: Path) -> bytes | None:
    """A regular file's bytes (never through a symbolic link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BLOB_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_BLOB_BYTES + 1)
    finally:
        os.close(fd)


def integrity(data: bytes) -> str:
    """npm's ``sha512-<base64>`` integrity string of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
