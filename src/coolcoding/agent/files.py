"""Workspace file operations of the agent, built on ``hostfs.WorkspaceDir`` (fd-relative, every
component opened with ``O_NOFOLLOW``), so a symlink planted by the user never leads a read, a
write, a listing or a hash out of the workspace, not even as a parent directory.

Writes are atomic (a temp file in the same directory, then ``rename``) and may be conditional on
the current content's sha256 (compare-and-swap). The check and the rename are serialized with the
agent's other writes; a program in the sandbox writing the same file in between still wins the
race, which the next change notification reports.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from typing import Any

from coolcoding.errors import InvalidInput
from coolcoding.filesync.hostfs import WorkspaceDir
from coolcoding.filesync.paths import normalize_path

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20
TMP_PREFIX = ".cc-tmp-"


class FileOpError(Exception):
    """A refused or failed file operation; ``code`` goes to the client as the error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def rel_path(raw: str, *, allow_root: bool = False) -> str:
    if allow_root and raw in ("", "."):
        return ""
    try:
        return normalize_path(raw)
    except InvalidInput as e:
        raise FileOpError("invalid_path", e.message) from e


def _oserror(path: str, e: OSError) -> FileOpError:
    if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return FileOpError("unsafe_path", f"{path!r} goes through a symlink or a non-folder")
    if e.errno == errno.ENOENT:
        return FileOpError("not_found", f"{path!r} does not exist")
    if e.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
        return FileOpError("conflict", f"{path!r}: {os.strerror(e.errno)}")
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return FileOpError("no_space", f"{path!r}: the workspace is full ({os.strerror(e.errno)})")
    return FileOpError("io", f"{path!r}: {os.strerror(e.errno or 0)}")


def entry_type(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        h.update(chunk)
    return h.hexdigest()


class WorkspaceFs(WorkspaceDir):
    """The agent's view of its workspace: workspace-relative paths, never through a symlink."""

    def _dir_fd(self, rel: str, *, create: bool) -> int:
        """fd of directory ``rel`` (``""`` = root), optionally creating missing folders."""
        fd = os.dup(self._fd)
        try:
            for name in rel.split("/") if rel else []:
                try:
                    nfd = os.open(name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                    nfd = os.open(name, _DIR, dir_fd=fd)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _split(self, rel: str) -> tuple[str, str]:
        head, _, name = rel.rpartition("/")
        return head, name

    def _open_file(self, rel: str) -> int:
        head, name = self._split(rel)
        dfd = self._dir_fd(head, create=False)
        try:
            fd = os.open(name, _READ, dir_fd=dfd)
        finally:
            os.close(dfd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileOpError("not_a_file", f"{rel!r} is not a regular file")
        return fd

    def read_bytes(self, rel: str, max_bytes: int) -> bytes:
        try:
            fd = self._open_file(rel)
        except OSError as e:
            raise _oserror(rel, e) from e
        try:
            if os.fstat(fd).st_size > max_bytes:
                raise FileOpError("too_large", f"{rel!r} is larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            got = 0
            while chunk := os.read(fd, _CHUNK):
                got += len(chunk)
                if got > max_bytes:  # it grew while we read
                    raise FileOpError("too_large", f"{rel!r} is larger than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def sha256(self, rel: str) -> str | None:
        """Hash of a regular file; ``None`` when absent or not a regular file."""
        try:
            fd = self._open_file(rel)
        except (OSError, FileOpError):
            return None
        try:
            return _hash_fd(fd)
        finally:
            os.close(fd)

    def write_atomic(
        self, rel: str, data: bytes, *, expected_sha256: str | None, expect_absent: bool
    ) -> str:
        """Replace ``rel`` with ``data`` atomically; the compare-and-swap check first."""
        head, name = self._split(rel)
        try:
            dfd = self._dir_fd(head, create=True)
        except OSError as e:
            raise _oserror(rel, e) from e
        try:
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if expect_absent and st is not None:
                raise FileOpError("conflict", f"{rel!r} already exists")
            if expected_sha256 is not None:
                current = self.sha256(rel) if st is not None else None
                if current != expected_sha256:
                    raise FileOpError("conflict", f"{rel!r} changed (sha256 {current})")
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise FileOpError("conflict", f"{rel!r} is a folder")
            # Keep an existing file's mode (an editor save must not drop a script's x bit).
            mode = stat.S_IMODE(st.st_mode) if st is not None and stat.S_ISREG(st.st_mode) else None
            tmp = f"{TMP_PREFIX}{secrets.token_hex(6)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o644, dir_fd=dfd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if mode is not None:
                    os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=dfd)
                raise
            os.close(fd)
            # rename replaces a symlink at ``name`` itself; it never writes through it.
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as e:
            raise _oserror(rel, e) from e
        finally:
            os.close(dfd)
        return hashlib.sha256(data).hexdigest()

    def delete(self, rel: str) -> bool:
        head, name = self._split(rel)
        try:
            dfd = self._dir_fd(head, create=False)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise _oserror(rel, e) from e
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _rmtree_at(dfd, name)
            else:
                os.unlink(name, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            raise _oserror(rel, e) from e
        finally:
            os.close(dfd)

    def move(self, src: str, dst: str, *, overwrite: bool) -> None:
        if dst == src or dst.startswith(src + "/"):
            raise FileOpError("invalid_path", f"cannot move {src!r} into itself")
        try:
            if self.lstat(src) is None:
                raise FileOpError("not_found", f"{src!r} does not exist")
            if not overwrite and self.lstat(dst) is not None:
                raise FileOpError("conflict", f"{dst!r} already exists")
            os.close(self._dir_fd(self._split(dst)[0], create=True))
            self.rename(src, dst)
        except OSError as e:
            raise _oserror(f"{src} -> {dst}", e) from e

    def mkdir(self, rel: str) -> None:
        try:
            os.close(self._dir_fd(rel, create=True))
        except OSError as e:
            raise _oserror(rel, e) from e

    def entry(self, rel: str, st: os.stat_result, *, with_hash: bool) -> dict[str, Any]:
        kind = entry_type(st.st_mode)
        e: dict[str, Any] = {"path": rel, "type": kind, "size": st.st_size, "mtime": st.st_mtime}
        if with_hash and kind == "file":
            digest = self.sha256(rel)
            if digest is not None:
                e["sha256"] = digest
        return e

    def probe(
        self, paths: list[str], max_bytes: int, *, content: bool
    ) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Each path's entry (type ``absent`` when missing or below a non-folder) and, with
        ``content``, each regular file's bytes up to ``max_bytes`` (those entries carry their
        ``sha256``; ``size`` is then the length of the bytes that follow)."""
        entries: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for rel in paths:
            st = self.lstat(rel)
            if st is None:
                entries.append({"path": rel, "type": "absent", "size": 0, "mtime": 0.0})
                continue
            e = self.entry(rel, st, with_hash=False)
            if content and e["type"] == "file" and st.st_size <= max_bytes:
                try:
                    data = self.read(rel, max_bytes)
                except OSError:
                    data = None
                if data is not None and len(data) <= max_bytes:
                    e["size"] = len(data)
                    e["sha256"] = hashlib.sha256(data).hexdigest()
                    blobs.append(data)
            entries.append(e)
        return entries, blobs

    def stat_entry(self, rel: str) -> dict[str, Any] | None:
        st = self.lstat(rel)
        return None if st is None else self.entry(rel, st, with_hash=False)

    def list_tree(self, rel: str, *, hashes: bool, max_entries: int) -> list[dict[str, Any]]:
        if rel:
            st = self.lstat(rel)
            if st is None:
                raise FileOpError("not_found", f"{rel!r} does not exist (or is below a symlink)")
            if not stat.S_ISDIR(st.st_mode):
                raise FileOpError("not_a_folder", f"{rel!r} is not a folder")
        out: list[dict[str, Any]] = []
        for path, st in self.walk(rel):
            if path.rpartition("/")[2].startswith(TMP_PREFIX):
                continue  # our own in-flight atomic writes
            if len(out) >= max_entries:
                raise FileOpError("too_many", f"more than {max_entries} entries under {rel!r}")
            if not is_utf8(path):  # not representable in JSON; the sync reports it by name
                out.append(
                    {"path": printable(path), "type": "invalid_name", "size": 0, "mtime": 0.0}
                )
                continue
            out.append(self.entry(path, st, with_hash=hashes))
        return out


def raw_rel(raw: str) -> str:
    """A workspace-relative path as the sandbox spells it (not normalized: the watcher's names
    are probed as they are on disk); refuses absolute paths, '.', '..', empty names and NUL."""
    parts = raw.split("/")
    if not raw or "\0" in raw or any(p in ("", ".", "..") for p in parts):
        raise FileOpError("invalid_path", f"{raw!r} is not a workspace-relative path")
    return raw


def is_utf8(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (decoded with surrogateescape)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _rmtree_at(parent_fd: int, name: str) -> None:
    fd = os.open(
        name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd
    )
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _rmtree_at(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
