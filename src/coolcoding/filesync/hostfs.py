"""Safe access to a workspace directory on the host: every path is resolved one component at a
time below the root with ``O_NOFOLLOW``, so a symlink planted by a sandboxed program (``ln -s /etc
x``) is never followed out of the workspace, not even as a parent directory."""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_uint,
]
MAX_ASIDE_TRIES = 50
# Temporary names of swaps (the agent's watcher and listings skip ``.cc-tmp-`` names).
SWAP_PREFIX = ".cc-tmp-swap-"


def _rename2(dfd: int, src: str, dst: str, flags: int, dst_dfd: int | None = None) -> None:
    """renameat2(2) (Python has no binding for EXCHANGE/NOREPLACE)."""
    to = dfd if dst_dfd is None else dst_dfd
    if _libc.renameat2(dfd, os.fsencode(src), to, os.fsencode(dst), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), dst)


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        b = os.pread(fd, min(1 << 20, limit + 1 - got), got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


@dataclass
class LateCheck:
    """An open fd on a file the sync replaced: a writer that opened it just before the swap may
    still write into it; ``changed()`` tells (and ``close()`` lets it go)."""

    rel: str
    fd: int
    seen: bytes

    def changed(self, limit: int) -> bytes | None:
        """The file's content if it differs from what the swap saw, else ``None``."""
        data = _read_fd(self.fd, limit)
        return None if data == self.seen else data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class Swapped:
    """What ``WorkspaceDir.swap`` replaced: the old content (``None`` if there was no file or it
    was over the limit), where it was kept (a conflict copy), or a late check on it."""

    existed: bool
    old: bytes | None
    aside: str | None
    late: LateCheck | None


# Decides what happens to the replaced file: ``None`` = discard it, else the path of the conflict
# copy to keep it at (same folder); gets (content or ``None`` when too large, attempt number).
AsideRule = Callable[[bytes | None, int], str | None]


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

    def swap(self, rel: str, data: bytes | None, aside: AsideRule, limit: int) -> Swapped:
        """Atomically put ``data`` at ``rel`` (``None``: remove it) and look at what was there.

        A sandboxed program may write the file at any moment, so nothing is ever checked and then
        overwritten: the new content is written to a temporary name and exchanged with the old
        file in one ``renameat2(RENAME_EXCHANGE)``; the old inode, with every byte written to it
        up to that instant, is then under the temporary name, where it is read and either
        discarded (its content was already known) or renamed to the conflict copy ``aside``
        picks. A writer that opened the old file just before the exchange can still write into it
        afterwards: a discarded file comes back with an open fd (``late``) to look at it again.
        Raises ``OSError`` if a parent is missing or not a real directory, or ``rel`` is a folder.
        """
        dfd, name = self._parent_fd(rel)
        try:
            return self._swap_at(dfd, rel, name, data, aside, limit)
        finally:
            if dfd != self._fd:
                os.close(dfd)

    def _swap_at(
        self, dfd: int, rel: str, name: str, data: bytes | None, aside: AsideRule, limit: int
    ) -> Swapped:
        try:
            cur = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            cur = None
        if cur is not None and not stat.S_ISREG(cur.st_mode):
            raise OSError(
                errno.EISDIR if stat.S_ISDIR(cur.st_mode) else errno.EINVAL, "not a file", rel
            )
        tmp = f"{SWAP_PREFIX}{secrets.token_hex(8)}"
        if data is None:
            if cur is None:
                return Swapped(False, None, None, None)
            try:
                _rename2(dfd, name, tmp, _RENAME_NOREPLACE)
            except FileNotFoundError:
                return Swapped(False, None, None, None)
        else:
            owner = cur if cur is not None else os.fstat(dfd)
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dfd,
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, (cur.st_mode & 0o7777) if cur is not None else 0o644)
                if os.geteuid() == 0:
                    os.fchown(fd, owner.st_uid, owner.st_gid)
            finally:
                os.close(fd)
            try:
                _rename2(dfd, tmp, name, _RENAME_EXCHANGE)
            except FileNotFoundError:
                try:
                    _rename2(dfd, tmp, name, _RENAME_NOREPLACE)
                    return Swapped(False, None, None, None)
                except FileExistsError:  # created meanwhile: exchange with it after all
                    _rename2(dfd, tmp, name, _RENAME_EXCHANGE)
        # ``tmp`` now names the previous file.
        try:
            ofd = os.open(tmp, _READ_FLAGS, dir_fd=dfd)
        except OSError:
            ofd = -1
        if ofd < 0 or not stat.S_ISREG(os.fstat(ofd).st_mode):
            # A folder, link or special file slipped in between the check and the exchange:
            # put it back and leave our content at the temporary name's place removed.
            if ofd >= 0:
                os.close(ofd)
            if data is None:
                _rename2(dfd, tmp, name, _RENAME_NOREPLACE)
            else:
                _rename2(dfd, tmp, name, _RENAME_EXCHANGE)
                os.unlink(tmp, dir_fd=dfd)
            raise OSError(errno.EINVAL, "not a file", rel)
        old = _read_fd(ofd, limit)
        content = old if len(old) <= limit else None
        for attempt in range(MAX_ASIDE_TRIES):
            target = aside(content, attempt)
            if target is None:
                os.unlink(tmp, dir_fd=dfd)
                return Swapped(True, content, None, LateCheck(rel, ofd, old))
            try:
                _rename2(dfd, tmp, target.rsplit("/", 1)[-1], _RENAME_NOREPLACE)
            except FileExistsError:
                continue
            os.close(ofd)
            return Swapped(True, content, target, None)
        os.close(ofd)
        raise OSError(errno.EEXIST, "no free conflict copy name", rel)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``; never replaces an entry at ``dst`` (``FileExistsError``)."""
        sfd, sname = self._parent_fd(src)
        try:
            dfd, dname = self._parent_fd(dst)
            try:
                _rename2(sfd, sname, dname, _RENAME_NOREPLACE, dfd)
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
