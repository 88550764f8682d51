"""Reading files a sandbox owns, from the host, without following its links.

What a session wrote into its home (pip's and npm's caches) is copied into host stores by
``pipcache`` and ``npmcache``. The sandbox may change it while the host reads: every folder is
opened relative to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``, every file with
``O_NOFOLLOW`` and checked on the open descriptor (a regular file, one link, at most ``cap``
bytes), and the copy is made from that descriptor, stopping one byte past ``cap`` whatever the
file grows to meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Protocol

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1024 * 1024


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def open_dir(name: str, dir_fd: int) -> int | None:
    """The sub-folder ``name`` of ``dir_fd`` (never a link, never '..'), or None."""
    if name in ("", ".", "..") or "/" in name:
        return None
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None


def open_regular(dir_fd: int, name: str, cap: int) -> tuple[int, os.stat_result] | None:
    """``name`` in ``dir_fd`` opened without following a link, if it is a regular file with
    one link and at most ``cap`` bytes: (fd, its stat); the caller closes the fd. None
    otherwise (nothing is left open)."""
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > cap:
        os.close(fd)
        return None
    return fd, st


def copy_capped(fd: int, tmp_dir: Path, cap: int, hasher: Hasher | None = None) -> str | None:
    """Copy what ``fd`` holds into a new file in ``tmp_dir`` (feeding ``hasher`` the bytes
    actually copied): its path, or None (and no file left) when more than ``cap`` bytes come
    or the copy fails."""
    tmp: str | None = None
    try:
        out, tmp = tempfile.mkstemp(prefix=".promote-", dir=tmp_dir)
        size = 0
        with os.fdopen(out, "wb") as f:
            while chunk := os.read(fd, min(CHUNK, cap + 1 - size)):
                size += len(chunk)
                if size > cap:
                    return None
                if hasher is not None:
                    hasher.update(chunk)
                f.write(chunk)
        done, tmp = tmp, None
        return done
    except OSError:
        return None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
