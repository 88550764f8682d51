"""Safe access to a workspace directory on the host: every path is resolved one component at a
time below the root with ``O_NOFOLLOW``, so a symlink planted by a sandboxed program (``ln -s /etc
x``) is never followed out of the workspace, not even as a parent directory."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class WorkspaceDir:
    """A host directory holding one workspace; paths are workspace-relative, '/'-separated."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fd = os.open(root, _DIR_FLAGS)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _parent_fd(self, rel: str) -> tuple[int, str]:
        """(fd of the parent directory, last name); the caller closes the fd if != root fd."""
        parts = rel.split("/")
        fd = self._fd
        for name in parts[:-1]:
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            finally:
                if fd != self._fd:
                    os.close(fd)
            fd = nfd
        return fd, parts[-1]

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry itself (a symlink is reported as one); ``None`` when it is absent or a parent
        is not a real directory."""
        try:
            fd, name = self._parent_fd(rel)
        except OSError:
            return None
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None
        finally:
            if fd != self._fd:
                os.close(fd)

    def read(self, rel: str, limit: int) -> bytes | None:
        """Content of a regular file (at most ``limit`` + 1 bytes); ``None`` if it is not one."""
        fd, name = self._parent_fd(rel)
        try:
            f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        finally:
            if fd != self._fd:
                os.close(fd)
        try:
            if not stat.S_ISREG(os.fstat(f).st_mode):
                return None
            chunks: list[bytes] = []
            got = 0
            while got <= limit:
                b = os.read(f, min(1 << 20, limit + 1 - got))
                if not b:
                    break
                chunks.append(b)
                got += len(b)
            return b"".join(chunks)
        finally:
            os.close(f)

    def rename(self, src: str, dst: str) -> None:
        sfd, sname = self._parent_fd(src)
        try:
            dfd, dname = self._parent_fd(dst)
            try:
                os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
            finally:
                if dfd != self._fd:
                    os.close(dfd)
        finally:
            if sfd != self._fd:
                os.close(sfd)

    def walk(self, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
        """Every entry below ``rel`` (not ``rel`` itself), parents before children, as (path,
        lstat); symlinked directories are listed, never entered."""
        try:
            fd, name = self._parent_fd(rel) if rel else (self._fd, "")
        except OSError:
            return
        try:
            top = os.open(name, _DIR_FLAGS, dir_fd=fd) if rel else os.dup(self._fd)
        except OSError:
            return
        finally:
            if fd != self._fd:
                os.close(fd)
        stack: list[tuple[int, str]] = [(top, rel)]
        while stack:
            dfd, drel = stack.pop()
            try:
                # O_PATH fds cannot be listed: reopen for reading, still without following links.
                lfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    names = sorted(os.listdir(lfd))
                finally:
                    os.close(lfd)
                for n in names:
                    path = f"{drel}/{n}" if drel else n
                    try:
                        st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
                    except OSError:
                        continue
                    yield path, st
                    if stat.S_ISDIR(st.st_mode):
                        try:
                            stack.append((os.open(n, _DIR_FLAGS, dir_fd=dfd), path))
                        except OSError:
                            continue
            except OSError:
                pass
            finally:
                os.close(dfd)
