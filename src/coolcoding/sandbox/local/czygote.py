"""The C zygote (zygote.c, ZYGOTE_SCRIPT's protocol without bash and env(1)): built, cached,
self-tested and handed to every pooled bwrap as a sealed memfd.

Built once per source and compiler flags (``cc -O2 -s -static``, dynamic when the static libc
is missing) into ``<data_dir>/sandbox-state/zygote-cache/<sha256>/``: a build runs in a
``.build-<pid>-*`` dir renamed into place, so a crashed build leaves no half binary under a
key (only a ``.build-*`` dir, removed by the next load once its pid is gone); the binary's own
digest is kept beside it and a copy that no longer matches it is rebuilt.

How it reaches the sandbox: the data dir is not mounted there, so the binary is copied into a
memfd sealed against writes, growth, shrinking and further seals (nobody, root included, can
change the bytes any zygote runs, through this fd or a reopened /proc/PID/fd), passed to each
bwrap as an inherited fd and executed as ``/proc/self/fd/N``. The zygote closes that fd with
every other one but 0-2 before it executes the program, so the program can neither keep nor
reopen it (bwrap's pid 1 closes its inherited fds too: tests/security/test_czygote_attacks.py).

``ZygoteChoice`` implements COOLCODING_SANDBOX_ZYGOTE: ``auto`` builds on the first zygote
start (off the event loop) and falls back to bash, saying why in the log, when the build or
the self-test fails, or when a C zygote dies during a sandbox's set-up where a bash one then
starts (runtime.py); ``c`` builds at start-up and fails it instead; ``bash`` never builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import resource
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Literal

from coolcoding.sandbox.local.pids import pid_alive
from coolcoding.sandbox.local.zygote import (
    MAX_REQUEST_BYTES,
    RELEASE,
    ZYGOTE_ENV,
    encode_request,
    zygote_command,
)

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("zygote.c")
FLAGS = ("-O2", "-s", f"-DMAX_REQUEST_BYTES={MAX_REQUEST_BYTES}")
CACHE_DIR = "zygote-cache"
BINARY = "zygote"
DIGEST = "zygote.sha256"
BUILD_PREFIX = ".build-"
BUILD_TIMEOUT_S = 120.0
STALE_BUILD_S = 3600.0  # far above BUILD_TIMEOUT_S: no live build is that old
SELF_TEST_TIMEOUT_S = 10.0
# Not in Python's os module before 3.12 (memfd.h, fcntl.h).
MFD_EXEC = 0x0010  # executable even under vm.memfd_noexec=1 (kernel 6.3+; older: EINVAL)
SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL

ZygoteMode = Literal["auto", "c", "bash"]


class ZygoteUnavailable(Exception):
    """The C zygote cannot be built, loaded or trusted here (the message says why)."""


class CZygote:
    """The loaded binary: a sealed memfd (close-on-exec in the server; each spawn passes it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def command(self, release_fd: int, control_fd: int, request_fd: int) -> list[str]:
        return [f"/proc/self/fd/{self.fd}", str(release_fd), str(control_fd), str(request_fd)]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def cache_key(source: bytes) -> str:
    """The cache dir's name: the source and every flag that changes the binary."""
    return hashlib.sha256(
        b"\0".join([source, *(f.encode() for f in FLAGS), b"-static"])
    ).hexdigest()


def clean_stale_builds(cache_root: Path) -> None:
    """Remove ``.build-<pid>-*`` dirs whose builder is gone (a build killed midway), or older
    than STALE_BUILD_S whatever their pid says (a pid reused since)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(cache_root):
            if not entry.name.startswith(BUILD_PREFIX):
                continue
            pid = entry.name[len(BUILD_PREFIX) :].partition("-")[0]
            with contextlib.suppress(OSError):
                old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_BUILD_S
                if old or not (pid.isdigit() and pid_alive(int(pid))):
                    shutil.rmtree(entry.path, ignore_errors=True)


def _compile(cc: str, src: Path, out: Path) -> None:
    errors = []
    for extra in (["-static"], []):  # static: the zygote then maps no shared library
        cmd = [cc, *FLAGS, *extra, "-o", str(out), str(src)]
        # The compiler's temporary files in the build dir too: a build killed midway leaves
        # them where the next start's clean_stale_builds removes them, not in /tmp.
        env = {**os.environ, "TMPDIR": str(out.parent)}
        try:
            done = subprocess.run(
                cmd, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False, env=env
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise ZygoteUnavailable(f"{cc}: {e}") from e
        if done.returncode == 0:
            return
        errors.append(done.stderr.decode(errors="replace").strip()[-500:])
    raise ZygoteUnavailable(f"{cc} failed: {errors[-1]!r} (static: {errors[0]!r})")


def _cached(final: Path) -> bytes | None:
    """The cached binary if its bytes still match the digest written at its build."""
    try:
        data = (final / BINARY).read_bytes()
        digest = (final / DIGEST).read_text().strip()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == digest else None


def build(cache_root: Path, source: bytes | None = None) -> bytes:
    """The zygote binary for ``source`` (default zygote.c): from the cache, else built."""
    source = SOURCE.read_bytes() if source is None else source
    final = cache_root / cache_key(source)
    clean_stale_builds(cache_root)
    data = _cached(final)
    if data is not None:
        return data
    cc = shutil.which("cc")
    if cc is None:
        raise ZygoteUnavailable("no C compiler (cc) in PATH")
    cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = cache_root / f"{BUILD_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    try:
        (work / "zygote.c").write_bytes(source)
        _compile(cc, work / "zygote.c", work / BINARY)
        data = (work / BINARY).read_bytes()
        (work / DIGEST).write_text(hashlib.sha256(data).hexdigest() + "\n")
        if final.exists():  # a copy that failed its digest: replaced
            shutil.rmtree(final)
        try:
            os.rename(work, final)
        except OSError:  # another builder's rename won: the same bytes
            if _cached(final) is None:
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("built the C zygote into %s", final)
    return data


def seal(binary: bytes) -> int:
    """A close-on-exec memfd holding ``binary``, sealed: its bytes can never change."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("coolcoding-zygote", flags | MFD_EXEC)
    except OSError:  # a kernel before 6.3: every memfd is executable
        fd = os.memfd_create("coolcoding-zygote", flags)
    try:
        view = memoryview(binary)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o555)  # and no write bit: a reopen for writing fails before the seal
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def run_once(
    zyg: CZygote | None, request: bytes, *, user: int | None = None, timeout_s: float = 10.0
) -> tuple[int, bytes, bytes, bytes]:
    """Run the zygote (``None``: the bash one) outside any sandbox through its whole protocol:
    (exit code, what it wrote on the control fd, stdout, stderr). For the self-test and tests."""
    ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    req = os.memfd_create("zygote-request", os.MFD_CLOEXEC)
    fds = [ctl_r, ctl_w, go_r, go_w, req]
    proc: subprocess.Popen[bytes] | None = None
    if zyg is None:
        cmd, env = zygote_command(go_r, ctl_w, req), dict(ZYGOTE_ENV)
        passed: tuple[int, ...] = (go_r, ctl_w, req)
    else:
        cmd, env, passed = zyg.command(go_r, ctl_w, req), {}, (zyg.fd, go_r, ctl_w, req)
    try:
        proc = subprocess.Popen(
            cmd,
            pass_fds=passed,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            user=user,
        )
        os.close(ctl_w)
        os.close(go_r)
        fds = [ctl_r, go_w, req]
        ready = os.read(ctl_r, 1)
        if ready == b"R":
            os.pwrite(req, request, 0)
            os.write(go_w, RELEASE)
        os.close(go_w)
        fds.remove(go_w)
        out, err = proc.communicate(timeout=timeout_s)
        control = ready
        while chunk := os.read(ctl_r, 64):
            control += chunk
        return proc.returncode, control, out, err
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            proc.wait()
        for fd in fds:
            os.close(fd)


def self_test(zyg: CZygote) -> None:
    """A program run through the zygote gets exactly its argv and environment, in order; a
    missing one is reported as X with exit 127. Raises ``ZygoteUnavailable`` otherwise."""
    env = {"PATH": "/usr/bin:/bin", "Z": "last", "A": "a b"}
    rl = [(resource.RLIMIT_CORE, (0, 0))]
    ok = encode_request(["cat", "/proc/self/environ"], "/", env, rl)
    missing = encode_request(["/nonexistent/zygote-self-test"], "/", env, rl)
    assert ok is not None and missing is not None
    want = b"PATH=/usr/bin:/bin\0Z=last\0A=a b\0PWD=/\0"
    try:
        got = run_once(zyg, ok, timeout_s=SELF_TEST_TIMEOUT_S)
        if got != (0, b"R", want, b""):
            raise ZygoteUnavailable(f"self-test: {got!r}, expected {(0, b'R', want, b'')!r}")
        got = run_once(zyg, missing, timeout_s=SELF_TEST_TIMEOUT_S)
        if got[:2] != (127, b"RX"):
            raise ZygoteUnavailable(f"self-test of a missing program: {got!r}")
    except (OSError, subprocess.SubprocessError) as e:
        raise ZygoteUnavailable(f"self-test: {e}") from e


def load(cache_root: Path) -> CZygote:
    """Built (or cached), sealed into a memfd and self-tested; ``ZygoteUnavailable`` if not."""
    try:
        data = build(cache_root)
        zyg = CZygote(seal(data))
    except OSError as e:
        raise ZygoteUnavailable(str(e)) from e
    try:
        self_test(zyg)
    except BaseException:
        zyg.close()
        raise
    return zyg


class ZygoteChoice:
    """Which zygote a runtime's pooled sandboxes run: the C one once it loaded, else bash."""

    def __init__(self, mode: ZygoteMode, cache_root: Path) -> None:
        self.mode = mode
        self.cache_root = cache_root
        self._lock = threading.Lock()
        self._done = mode == "bash"
        self._zygote: CZygote | None = None
        self._retired: list[CZygote] = []

    @property
    def current(self) -> CZygote | None:
        """The loaded C zygote; ``None`` until loaded, with bash, or after a failed load."""
        return self._zygote

    def resolve(self) -> CZygote | None:
        """Load the C zygote once (blocking); ``None``: bash. Mode ``c`` raises instead."""
        with self._lock:
            if not self._done:
                try:
                    self._zygote = load(self.cache_root)
                except ZygoteUnavailable as e:
                    if self.mode == "c":
                        raise
                    log.warning("the C zygote is unavailable, pooled sandboxes use bash: %s", e)
                self._done = True
            return self._zygote

    async def get(self) -> CZygote | None:
        if self._done:
            return self._zygote
        return await asyncio.to_thread(self.resolve)

    def disable(self, zyg: CZygote, reason: str) -> None:
        """Bash from now on (mode ``auto``): ``zyg`` failed in a sandbox where bash started."""
        with self._lock:
            if self._zygote is zyg:
                log.warning(
                    "the C zygote failed in a sandbox, pooled sandboxes use bash: %s", reason
                )
                self._zygote = None
        # ``zyg``'s fd stays open: a spawn in flight may still pass it; closed with the runtime.
        self._retired.append(zyg)

    def close(self) -> None:
        with self._lock:
            for zyg in [self._zygote, *self._retired]:
                if zyg is not None:
                    zyg.close()
            self._zygote, self._retired = None, []
            self._done = True
