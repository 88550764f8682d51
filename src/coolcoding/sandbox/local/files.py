"""Host-side access to a workspace directory that never follows a link out of it.

The sandbox user controls the workspace, so any component may be a symlink, a FIFO or may change
under us. Every step opens exactly one name relative to the previous directory fd with
``O_NOFOLLOW`` (openat-style walking): a symlink anywhere fails with ELOOP/ENOTDIR instead of
being followed. Special files are refused (a FIFO would block the server). New files and folders
are given to the sandbox uid.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection, Mapping

from coolcoding.sandbox.base import SandboxError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split_path(path: str) -> list[str]:
    parts = path.strip("/").split("/") if path.strip("/") else []
    for p in parts:
        if p in ("", ".", "..") or "\0" in p:
            raise SandboxError("bad_path", f"Invalid workspace path: {path!r}")
    return parts


def _refuse(path: str, e: OSError) -> SandboxError:
    if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return SandboxError("unsafe_path", f"{path!r} goes through a symlink or a non-folder")
    if e.errno == errno.ENOENT:
        return SandboxError("not_found", f"{path!r} does not exist")
    return SandboxError("io", f"Cannot access {path!r}", f"{path!r}: {e}")


class WorkspaceFiles:
    def __init__(self, root: str, uid: int, gid: int, chown: bool) -> None:
        self.root = root
        self.uid, self.gid, self.chown = uid, gid, chown

    def _open_dir(self, parts: list[str], *, create: bool) -> int:
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in parts:
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    if self.chown:
                        os.fchown(nfd, self.uid, self.gid)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def write(self, path: str, data: bytes, *, executable: bool = False) -> None:
        parts = split_path(path)
        if not parts:
            raise SandboxError("bad_path", "Cannot write the workspace root")
        is_dir = path.endswith("/")
        try:
            dfd = self._open_dir(parts if is_dir else parts[:-1], create=True)
        except OSError as e:
            raise _refuse(path, e) from e
        try:
            if is_dir:
                return
            # O_NONBLOCK: opening a FIFO for writing must not block; we then refuse non-files.
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            fd = os.open(parts[-1], flags, 0o644, dir_fd=dfd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise SandboxError("unsafe_path", f"{path!r} is not a regular file")
                if st.st_nlink > 1:
                    # A hard link made in the sandbox: replace it rather than write through it.
                    os.close(fd)
                    fd = -1
                    os.unlink(parts[-1], dir_fd=dfd)
                    fd = os.open(parts[-1], flags | os.O_EXCL, 0o644, dir_fd=dfd)
                os.set_blocking(fd, True)
                os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.chown:
                    os.fchown(fd, self.uid, self.gid)
                if executable:
                    os.fchmod(fd, 0o755)
            finally:
                if fd >= 0:
                    os.close(fd)
        except OSError as e:
            raise _refuse(path, e) from e
        finally:
            os.close(dfd)

    def delete(self, path: str) -> None:
        parts = split_path(path)
        if not parts:
            raise SandboxError("bad_path", "Cannot delete the workspace root")
        try:
            dfd = self._open_dir(parts[:-1], create=False)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _refuse(path, e) from e
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._rmtree_at(dfd, parts[-1])
            else:
                os.unlink(parts[-1], dir_fd=dfd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise _refuse(path, e) from e
        finally:
            os.close(dfd)

    def _rmtree_at(self, parent_fd: int, name: str) -> None:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            for entry in os.scandir(fd):
                if entry.is_dir(follow_symlinks=False):
                    self._rmtree_at(fd, entry.name)
                else:
                    os.unlink(entry.name, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        parts = split_path(path)
        if not parts:
            raise SandboxError("bad_path", "Cannot read the workspace root")
        try:
            dfd = self._open_dir(parts[:-1], create=False)
            try:
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                fd = os.open(parts[-1], flags, dir_fd=dfd)
            finally:
                os.close(dfd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise SandboxError("unsafe_path", f"{path!r} is not a regular file")
                if max_bytes is not None and st.st_size > max_bytes:
                    raise SandboxError("too_large", f"{path!r} is larger than {max_bytes} bytes")
                chunks = []
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)
        except OSError as e:
            raise _refuse(path, e) from e

    def apply(self, files: Mapping[str, bytes | None], executables: Collection[str] = ()) -> None:
        for path, data in files.items():
            if data is None:
                self.delete(path)
            else:
                self.write(path, data, executable=path in executables)


def disk_usage_bytes(root: str) -> int:
    """Bytes allocated under ``root`` (st_blocks); fd-relative, never following a link."""
    total = _disk_usage(root, None)
    assert total is not None
    return total


def disk_usage_bytes_upto(root: str, max_entries: int) -> int | None:
    """``disk_usage_bytes``, or ``None`` once more than ``max_entries`` entries were seen: a
    small tree (a judge job's few files) is measured on the caller's thread, a big one is
    left to a worker thread."""
    return _disk_usage(root, max_entries)


def _disk_usage(root: str, max_entries: int | None) -> int | None:
    total = 0
    seen = 0
    try:
        stack = [os.open(root, _DIR_FLAGS)]
    except OSError:
        return 0
    try:
        while stack:
            fd = stack.pop()
            try:
                with os.scandir(fd) as it:
                    for e in it:
                        seen += 1
                        if max_entries is not None and seen > max_entries:
                            return None
                        try:
                            st = os.stat(e.name, dir_fd=fd, follow_symlinks=False)
                            total += st.st_blocks * 512
                            if stat.S_ISDIR(st.st_mode):
                                stack.append(os.open(e.name, _DIR_FLAGS, dir_fd=fd))
                        except OSError:
                            continue
            finally:
                os.close(fd)
    finally:
        for fd in stack:  # left open by an early return
            os.close(fd)
    return total
