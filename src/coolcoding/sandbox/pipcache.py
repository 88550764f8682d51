"""pip downloads kept per user: a second ``pip install`` of a package the same user installed
before reads it from a wheelhouse on the host instead of the index.

Why per user, not host-wide as npm's store (sandbox/npmcache.py): an npm tarball is looked up
by its SHA-512 (the registry's or the lockfile's integrity), so a session cannot plant content
for a name. A wheel is found by its file name (project, version, tags): pip reads every
``PIP_FIND_LINKS`` folder and installs the best name. A host-wide wheelhouse filled from user
A's sandbox would let A plant a ``requests-2.31.0-py3-none-any.whl`` that B's pip installs, and
the host cannot check a wheel against the index offline. So each user's downloads go to
``<package_cache_dir>/pip-users/<user id>-<created>/`` (``user_key``), bound read-only at ``SHARED_PIP_USER`` into that
user's sessions only, after the operator's host-wide ``pip/`` in ``PIP_FIND_LINKS``: A can only
affect A (what A's own code could do to A's workspace anyway). A host-wide pip cache needs a
source the host trusts: the operator's wheelhouse, or a caching index proxy run by the host
(not built).

Where the wheels come from: pip's own cache in the sandbox's home (``PIP_CACHE_DIR``, a tmpfs
only that sandbox sees, reached through ``/proc/PID/root``). pip has no option to keep what it
downloads as files (``pip download`` is a separate command), so the host reads:
- ``wheels/``: the wheels pip built from source distributions, under their own file names;
- ``http/`` (pip < 23.3, Debian's 23.0) and ``http-v2/`` (pip >= 23.3): pip's HTTP cache. A
  ``http-v2`` ``*.body`` file is the response's bytes; a ``http`` entry is CacheControl's
  ``cc=4,`` + MessagePack map whose ``response.body`` holds them (read by the small bounded
  reader below). Only responses the index allows caching are there (PyPI's files are
  ``Cache-Control: max-age=365000000``). Its name comes from the wheel's own metadata
  (``*.dist-info`` name and version, ``WHEEL`` tags).
Everything below the cache folder belongs to the session: each folder is opened without
following links (``openat`` + ``O_NOFOLLOW``); a file must be regular with one link, at most
``max_blob_bytes``; it is copied from the open descriptor to the host and only that copy is
checked: a valid zip, exactly one ``*.dist-info`` whose ``RECORD`` lists every member with its
SHA-256 (and the hashes match), whose ``METADATA`` name and version are the file name's and
whose ``WHEEL`` tags cover the file name's. It is stored with build tag ``0``
(:func:`stored_name`: pip then prefers it to the index's copy of the same file). An entry in the wheelhouse is never replaced (a new
name is linked in, ``os.link`` fails if it exists); the user's wheelhouse holds at most
``quota_bytes``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import email.parser
import hashlib
import io
import mmap
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from coolcoding.sandbox.nofollow import CHUNK, copy_capped, open_dir, open_regular

SHARED_PIP_USER = "/opt/package-cache/pip-user"
USERS_DIR = "pip-users"
CACHE_IN_HOME = (".cache", "pip")
MAX_BLOB_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 7  # http/a/b/c/d/e/<entry>; wheels/aa/bb/cc/dd/<rest>/<wheel>
MAX_FILES = 20000
MAX_MEMBERS = 100000
_USER = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_PART = r"[A-Za-z0-9_.]+"
WHEEL_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-(?P<version>[A-Za-z0-9_.!+]+)"
    rf"(?:-(?P<build>[0-9][A-Za-z0-9_.]*))?-(?P<py>{_PART})-(?P<abi>{_PART})-(?P<plat>{_PART})"
    r"\.whl"
)


@dataclass
class PromoteResult:
    promoted: int = 0
    already: int = 0
    rejected: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class WheelInfo:
    name: str  # as METADATA says
    version: str
    tags: frozenset[tuple[str, str, str]]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def user_key(user_id: int, created_at: datetime) -> str:
    """The name of a user's wheelhouse: the account's id and its creation time in microseconds.
    The id alone is not enough: SQLite hands the id of the most recently deleted account to the
    next one, who would inherit (and install) what the deleted account planted."""
    stamp = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    return f"{user_id}-{round(stamp.timestamp() * 1_000_000)}"


def user_dir(package_cache_dir: str, user: str) -> Path | None:
    """The user's wheelhouse on the host (``pip-users/<user_key>``), or None (no cache dir, or
    a key not of ``user_key``'s form)."""
    if not package_cache_dir or not _USER.fullmatch(user):
        return None
    return Path(package_cache_dir) / USERS_DIR / user


def remove_user_dir(package_cache_dir: str, user: str) -> bool:
    """Remove a user's wheelhouse (the account was deleted): True when there was one. The
    removal works on directory fds and never follows a link (``shutil.rmtree`` on Linux), so a
    link planted inside cannot redirect it."""
    dest = user_dir(package_cache_dir, user)
    if dest is None or not dest.is_dir() or dest.is_symlink():
        return False
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover (Linux always has it)
        raise OSError("this platform cannot remove a directory without following links")
    shutil.rmtree(dest)
    return True


# --- wheels ---------------------------------------------------------------------------------


def inspect_wheel(path: Path, max_unpacked_bytes: int) -> WheelInfo:
    """The wheel at ``path`` (a host file nobody else writes), checked: a zip with exactly one
    ``*.dist-info`` whose RECORD lists every member with a matching hash. Raises ValueError."""
    try:
        with zipfile.ZipFile(path) as z:
            return _inspect(z, max_unpacked_bytes)
    except (zipfile.BadZipFile, OSError, KeyError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"not a valid wheel: {exc}") from exc


def _inspect(z: zipfile.ZipFile, max_unpacked_bytes: int) -> WheelInfo:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ValueError("too many members")
    if sum(i.file_size for i in infos) > max_unpacked_bytes:
        raise ValueError("too big unpacked")
    tops = {i.filename.split("/", 1)[0] for i in infos}
    dist_infos = [t for t in tops if t.endswith(".dist-info")]
    if len(dist_infos) != 1:
        raise ValueError("not exactly one .dist-info")
    di = dist_infos[0]
    record_name = f"{di}/RECORD"
    record: dict[str, tuple[str, str]] = {}
    for row in csv.reader(io.StringIO(z.read(record_name).decode())):
        if not row:
            continue
        if len(row) != 3 or row[0] in record:
            raise ValueError("bad RECORD row")
        record[row[0]] = (row[1], row[2])
    members = {i.filename: i for i in infos if not i.filename.endswith("/")}
    if len(members) != len([i for i in infos if not i.filename.endswith("/")]):
        raise ValueError("duplicate member")
    unsigned = {record_name, f"{di}/RECORD.jws", f"{di}/RECORD.p7s"}
    for name, info in members.items():
        if name not in record:
            raise ValueError(f"{name} not in RECORD")
        digest, size = record[name]
        if name in unsigned and not digest:
            continue
        algo, _, want = digest.partition("=")
        if algo not in ("sha256", "sha384", "sha512") or (size and int(size) != info.file_size):
            raise ValueError(f"bad RECORD entry for {name}")
        h = hashlib.new(algo)
        with z.open(info) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
        if got != want:
            raise ValueError(f"hash of {name} differs from RECORD")
    if set(record) - set(members):
        raise ValueError("RECORD lists a missing file")
    parser = email.parser.Parser()
    wheel = parser.parsestr(z.read(f"{di}/WHEEL").decode())
    meta = parser.parsestr(z.read(f"{di}/METADATA").decode(), headersonly=True)
    if not (wheel.get("Wheel-Version") or "").startswith("1."):
        raise ValueError("unknown Wheel-Version")
    name, version = meta.get("Name") or "", meta.get("Version") or ""
    di_name, _, di_version = di[: -len(".dist-info")].partition("-")
    if not name or canonical(di_name) != canonical(name) or di_version != version:
        raise ValueError("the .dist-info folder is not METADATA's name and version")
    tags: set[tuple[str, str, str]] = set()
    for tag in wheel.get_all("Tag") or ():
        parts = tag.strip().split("-")
        if len(parts) != 3 or not all(re.fullmatch(_PART, p) for p in parts):
            raise ValueError("bad tag")
        tags.add((parts[0], parts[1], parts[2]))
    if not tags:
        raise ValueError("no tags")
    return WheelInfo(name, version, frozenset(tags))


def name_matches(filename: str, info: WheelInfo) -> bool:
    """Whether the wheel file name (PEP 427) is that of ``info``: same project and version, and
    every tag it names is one the wheel's WHEEL file declares."""
    m = WHEEL_NAME.fullmatch(filename)
    if m is None or len(filename) > 255:
        return False
    if canonical(m["name"]) != canonical(info.name) or m["version"] != _escape_version(
        info.version
    ):
        return False
    named = {
        (py, abi, plat)
        for py in m["py"].split(".")
        for abi in m["abi"].split(".")
        for plat in m["plat"].split(".")
    }
    return named <= info.tags


def stored_name(filename: str) -> str:
    """The name a checked wheel gets in the wheelhouse: with build tag ``0`` when it has none.
    pip ranks a build tag above none at the same version and tags (PEP 427: the tie-breaker),
    so it installs the promoted copy instead of downloading the index's same file again (pip
    23.0 prefers the index's candidate on a tie). An index wheel with a build tag of its own
    still wins; with ``--require-hashes`` the hash decides first."""
    m = WHEEL_NAME.fullmatch(filename)
    if m is None or m["build"] is not None:
        return filename
    return f"{m['name']}-{m['version']}-0-{m['py']}-{m['abi']}-{m['plat']}.whl"


def _escape_version(version: str) -> str:
    return version.replace("-", "_")


def filename_for(info: WheelInfo) -> str | None:
    """The PEP 427 file name of a wheel known by its contents only (pip's HTTP cache), or None
    when its tags are not a product of python, abi and platform tags."""
    pys = sorted({t[0] for t in info.tags})
    abis = sorted({t[1] for t in info.tags})
    plats = sorted({t[2] for t in info.tags})
    if len(pys) * len(abis) * len(plats) != len(info.tags):
        return None
    name = re.sub(r"[^\w\d.]+", "_", info.name, flags=re.ASCII)
    fn = f"{name}-{_escape_version(info.version)}-{'.'.join(pys)}-{'.'.join(abis)}-{'.'.join(plats)}.whl"
    return fn if name_matches(fn, info) else None


# --- pip's HTTP cache (CacheControl's serialization) ----------------------------------------


def http_body(buf: bytes | mmap.mmap) -> tuple[int, int] | None:
    """Offset and length of ``response.body`` in a pip < 23.3 HTTP cache entry (``cc=4,`` and a
    MessagePack map), or None."""
    if buf[:5] != b"cc=4,":
        return None
    try:
        n, i = _map_len(buf, 5)
        for _ in range(n):
            key, i = _str(buf, i)
            if key != b"response":
                i = _skip(buf, i, 0)
                continue
            m, i = _map_len(buf, i)
            for _ in range(m):
                k, i = _str(buf, i)
                if k == b"body":
                    return _bin(buf, i)
                i = _skip(buf, i, 0)
            return None
    except (IndexError, ValueError, struct.error):
        return None
    return None


def _u(buf: bytes | mmap.mmap, i: int, size: int) -> int:
    if i + size > len(buf):
        raise IndexError
    return int.from_bytes(buf[i : i + size], "big")


def _map_len(buf: bytes | mmap.mmap, i: int) -> tuple[int, int]:
    b = buf[i]
    if 0x80 <= b <= 0x8F:
        return b & 0x0F, i + 1
    if b == 0xDE:
        return _u(buf, i + 1, 2), i + 3
    if b == 0xDF:
        return _u(buf, i + 1, 4), i + 5
    raise ValueError("not a map")


def _str(buf: bytes | mmap.mmap, i: int) -> tuple[bytes, int]:
    b = buf[i]
    if 0xA0 <= b <= 0xBF:
        n, i = b & 0x1F, i + 1
    elif b in (0xD9, 0xDA, 0xDB):
        size = {0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
        n, i = _u(buf, i + 1, size), i + 1 + size
    else:
        return b"", _skip(buf, i, 0)  # not a string key: skipped, never matched
    if i + n > len(buf):
        raise IndexError
    return bytes(buf[i : i + n]), i + n


def _bin(buf: bytes | mmap.mmap, i: int) -> tuple[int, int] | None:
    b = buf[i]
    size = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(b)
    if size is None:
        return None
    n = _u(buf, i + 1, size)
    start = i + 1 + size
    if start + n > len(buf):
        return None
    return start, n


def _skip(buf: bytes | mmap.mmap, i: int, depth: int) -> int:
    """The offset after the MessagePack value at ``i``."""
    if depth > 16:
        raise ValueError("too deep")
    b = buf[i]
    if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
        return i + 1
    if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
        n, i = _map_len(buf, i)
        for _ in range(2 * n):
            i = _skip(buf, i, depth + 1)
        return i
    if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
        if b <= 0x9F:
            n, i = b & 0x0F, i + 1
        else:
            size = 2 if b == 0xDC else 4
            n, i = _u(buf, i + 1, size), i + 1 + size
        for _ in range(n):
            i = _skip(buf, i, depth + 1)
        return i
    if 0xA0 <= b <= 0xBF:
        end = i + 1 + (b & 0x1F)
    elif b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB):
        size = {0xC4: 1, 0xD9: 1, 0xC5: 2, 0xDA: 2, 0xC6: 4, 0xDB: 4}[b]
        end = i + 1 + size + _u(buf, i + 1, size)
    elif b in (0xC7, 0xC8, 0xC9):
        size = {0xC7: 1, 0xC8: 2, 0xC9: 4}[b]
        end = i + 2 + size + _u(buf, i + 1, size)
    elif b in (0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3):
        end = (
            i
            + 1
            + {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}.get(
                b, {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}.get(b, 0)
            )
        )
    elif 0xD4 <= b <= 0xD8:
        end = i + 2 + {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[b]
    else:
        raise ValueError("bad MessagePack")
    if end > len(buf):
        raise IndexError
    return end


# --- promotion ------------------------------------------------------------------------------


def _walk(dir_fd: int, depth: int, count: list[int]) -> Iterator[tuple[int, str]]:
    """(folder fd, file name) of every entry below ``dir_fd``, folders opened without following
    links, at most MAX_DEPTH deep and MAX_FILES entries. The fd is valid while the caller
    handles the item."""
    for name in sorted(os.listdir(dir_fd)):
        count[0] += 1
        if count[0] > MAX_FILES:
            return
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if depth >= MAX_DEPTH:
                continue
            sub = open_dir(name, dir_fd)
            if sub is None:
                continue
            try:
                yield from _walk(sub, depth + 1, count)
            finally:
                os.close(sub)
        else:
            yield dir_fd, name  # links, fifos...: refused by _copy_in (O_NOFOLLOW, S_ISREG)


class Seen(Exception):
    """The file was handled at an earlier promotion from the same sandbox."""


def _copy_in(
    dir_fd: int, name: str, cap: int, tmp_dir: Path, seen: set[tuple[int, int, int]] | None
) -> str | None:
    """Copy the regular file ``name`` (never a link, one link only, at most ``cap`` bytes) from
    its open descriptor to a new host file in ``tmp_dir``; its path, or None. ``seen`` holds
    the (inode, size, mtime) of the files handled before (raises :class:`Seen`)."""
    opened = open_regular(dir_fd, name, cap)
    if opened is None:
        return None
    fd, st = opened
    try:
        if seen is not None:
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key in seen:
                raise Seen
            seen.add(key)
        return copy_capped(fd, tmp_dir, cap)
    finally:
        os.close(fd)


def _extract_body(path: str, tmp_dir: Path) -> str | None:
    """The wheel in a pip < 23.3 HTTP cache entry copied to its own host file, or None."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 16:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            found = http_body(m)
            if found is None or m[found[0] : found[0] + 4] != b"PK\x03\x04":
                return None
            out, body = tempfile.mkstemp(prefix=".promote-", dir=tmp_dir)
            with os.fdopen(out, "wb") as o:
                o.write(m[found[0] : found[0] + found[1]])
    return body


def _is_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _used_bytes(dest: Path) -> int:
    total = 0
    for entry in os.scandir(dest):
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _same_file(a: Path | str, b: Path | str) -> bool:
    def digest(p: Path | str) -> bytes:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.digest()

    return digest(a) == digest(b)


def _ensure_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(exist_ok=True)
        os.chmod(path, 0o755)  # noqa: S103 (sandbox uids read the wheelhouse)


def promote_fd(
    cache_fd: int,
    dest: Path,
    *,
    max_blob_bytes: int = MAX_BLOB_BYTES,
    max_total_bytes: int | None = None,
    quota_bytes: int,
    seen: set[tuple[int, int, int]] | None = None,
) -> PromoteResult:
    """Copy the verified wheels of the pip cache open at ``cache_fd`` (untrusted below it) into
    the user's wheelhouse ``dest`` (created if needed). ``seen``: kept by the caller between
    promotions from one sandbox, so a file is copied and checked once (not every interval)."""
    result = PromoteResult()
    # pip-users/ holds the host's temporary copies; the user's folder is made at the first
    # wheel (a session of a user without one starts from the pool: sandbox/local/session_pool).
    _ensure_dir(dest.parent)
    budget = quota_bytes - (_used_bytes(dest) if dest.is_dir() else 0)
    if max_total_bytes is not None:
        budget = min(budget, max_total_bytes)
    for kind in ("wheels", "http", "http-v2"):
        sub = open_dir(kind, cache_fd)
        if sub is None:
            continue
        try:
            for dir_fd, name in _walk(sub, 1, [0]):
                if kind == "wheels" and not name.endswith(".whl"):
                    continue
                if kind == "http-v2" and not name.endswith(".body"):
                    continue
                if budget <= 0:
                    result.rejected += 1
                    continue
                try:
                    outcome = _promote_one(
                        dir_fd, name, kind, dest, min(max_blob_bytes, budget), seen
                    )
                except Seen:
                    continue
                if outcome is None:
                    result.rejected += 1
                elif outcome < 0:  # a cached index page, not a wheel
                    continue
                elif outcome == 0:
                    result.already += 1
                else:
                    result.promoted += 1
                    result.bytes += outcome
                    budget -= outcome
        finally:
            os.close(sub)
    return result


def _promote_one(
    dir_fd: int,
    name: str,
    kind: str,
    dest: Path,
    cap: int,
    seen: set[tuple[int, int, int]] | None = None,
) -> int | None:
    """Bytes promoted, 0 when the same wheel is there already, -1 for an HTTP cache entry that
    is not a zip (an index page), None when rejected."""
    tmps: list[str] = []
    try:
        copy = _copy_in(dir_fd, name, cap, dest.parent, seen)
        if copy is None:
            return None
        tmps.append(copy)
        if kind == "http-v2" and not _is_zip(copy):
            return -1
        if kind == "http":
            body = _extract_body(copy, dest.parent)
            if body is None:
                return -1
            tmps.append(body)
            copy = body
        try:
            info = inspect_wheel(Path(copy), max_unpacked_bytes=4 * cap)
        except ValueError:
            return None
        filename = name if kind == "wheels" else filename_for(info)
        if filename is None or not name_matches(filename, info):
            return None
        target = dest / stored_name(filename)
        if os.path.lexists(target):
            return 0 if _same_file(target, copy) else None
        os.chmod(copy, 0o444)
        _ensure_dir(dest)
        try:
            os.link(copy, target)  # never replaces an entry
        except FileExistsError:
            return 0 if _same_file(target, copy) else None
        return os.stat(copy).st_size
    except OSError:
        return None
    finally:
        for t in tmps:
            with contextlib.suppress(OSError):
                os.unlink(t)


def promote(
    pip_cache: Path,
    dest: Path,
    *,
    max_blob_bytes: int = MAX_BLOB_BYTES,
    max_total_bytes: int | None = None,
    quota_bytes: int,
    seen: set[tuple[int, int, int]] | None = None,
) -> PromoteResult:
    """:func:`promote_fd` from a folder (``pip_cache`` itself trusted as a path)."""
    try:
        fd = os.open(pip_cache, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return PromoteResult()
    try:
        return promote_fd(
            fd, dest, max_blob_bytes=max_blob_bytes, max_total_bytes=max_total_bytes,
            quota_bytes=quota_bytes, seen=seen,
        )  # fmt: skip
    finally:
        os.close(fd)


def promote_from_sandbox(
    pid: int,
    home: str,
    dest: Path,
    *,
    still_ours: Callable[[], bool] = lambda: True,
    max_blob_bytes: int = MAX_BLOB_BYTES,
    max_total_bytes: int | None = None,
    quota_bytes: int,
    seen: set[tuple[int, int, int]] | None = None,
) -> PromoteResult:
    """:func:`promote_fd` from the pip cache (``<home>/.cache/pip``) of a running sandbox,
    through its process's root (``/proc/PID/root``); every component below that root is opened
    without following links (as npmcache.promote_from_sandbox)."""
    try:
        root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return PromoteResult()
    fds = [root]
    try:
        if not still_ours():
            return PromoteResult()
        cur = root
        for part in (*Path(home.strip("/")).parts, *CACHE_IN_HOME):
            nxt = open_dir(part, cur)
            if nxt is None:
                return PromoteResult()
            fds.append(nxt)
            cur = nxt
        return promote_fd(
            cur, dest, max_blob_bytes=max_blob_bytes, max_total_bytes=max_total_bytes,
            quota_bytes=quota_bytes, seen=seen,
        )  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)
