"""Dependency caching (issue 10): a job's pinned packages (pip for Python, npm for JavaScript),
installed once into a content-addressed, read-only directory that later jobs share.

The key is the SHA-256 of (language, its version, the sorted pinned requirements): the same set
is installed once per server and mounted read-only at ``/deps`` into every job that names it
(``PYTHONPATH=/deps``, ``NODE_PATH=/deps/node_modules``). Installing runs the package manager
in its own throw-away sandbox (as a program would run: a user's setup.py or npm script is
untrusted code), with the network when packages come from an index, or offline from
``exec_deps_wheelhouse``; the result leaves the sandbox as a tar stream (bounded by
``exec_deps_max_mb``) and is unpacked on the host with tarfile's ``data`` filter (no links out,
no devices, no set-uid), owned by root and read-only. A failed install is the job's
``compilation_error`` with the installer's output, never ``internal_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coolcoding.errors import InvalidInput
from coolcoding.sandbox.base import ExecLimits, Runtime
from coolcoding.settings import Settings

SANDBOX_DEPS = "/deps"
WHEELHOUSE = "/wheelhouse"
_PIP = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+$"
)
_NPM = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*@[0-9A-Za-z.+_-]+$")
PATTERNS = {"python": _PIP, "javascript": _NPM}
FORMS = {"python": "name==version", "javascript": "name@version"}
ENV = {
    "python": {"PYTHONPATH": SANDBOX_DEPS},
    "javascript": {"NODE_PATH": f"{SANDBOX_DEPS}/node_modules"},
}


def validate_dependencies(
    language: str, deps: Sequence[str] | None, settings: Settings
) -> list[str]:
    """The job's requirements, sorted and deduplicated; a clear 400 for anything else than
    exactly pinned packages of a language that has a package manager here."""
    if not deps:
        return []
    pattern = PATTERNS.get(language)
    if pattern is None:
        raise InvalidInput(
            f"dependencies are not supported for {language}; supported: {', '.join(PATTERNS)}",
            code="dependencies_unsupported",
        )
    if len(deps) > settings.exec_deps_max:
        raise InvalidInput(
            f"{len(deps)} dependencies; the maximum is {settings.exec_deps_max}",
            code="too_many_dependencies",
            maximum=settings.exec_deps_max,
        )
    for dep in deps:
        if not isinstance(dep, str) or len(dep) > 200 or not pattern.match(dep):
            raise InvalidInput(
                f"dependency {str(dep)[:200]!r} is not pinned as {FORMS[language]}",
                code="invalid_dependency",
            )
    return sorted(set(deps))


def cache_key(language: str, version: str | None, deps: Sequence[str]) -> str:
    blob = json.dumps([language, version or "", sorted(deps)]).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass
class Installed:
    path: Path | None  # the read-only directory to mount at /deps, or None when it failed
    output: str = ""  # the installer's output (shown as the compile output on failure)
    installed_now: bool = False


class DependencyCache:
    def __init__(self, root: Path, runtime: Runtime | None, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self._runtime = runtime
        self._locks: dict[str, asyncio.Lock] = {}
        self.installs = 0  # how many installations ran (tests, figures)

    def bind(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def ensure(self, language: str, version: str | None, deps: Sequence[str]) -> Installed:
        key = cache_key(language, version, deps)
        path = self.root / key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if path.is_dir():
                with contextlib.suppress(OSError):
                    os.utime(path)  # recently used: evicted last
                return Installed(path)
            result = await self._install(language, deps, path)
        if not lock.locked():
            self._locks.pop(key, None)
        return result

    def _argv(self, language: str, deps: Sequence[str]) -> list[str]:
        s = self.settings
        if language == "python":
            argv = ["/usr/bin/python3", "-m", "pip", "install", "--no-cache-dir", "--no-input",
                    "--disable-pip-version-check", "--break-system-packages", "--no-compile",
                    "--target", "deps"]  # fmt: skip
            if s.exec_deps_wheelhouse is not None:
                argv += ["--no-index", "--find-links", WHEELHOUSE]
            elif s.exec_deps_pip_index_url:
                argv += ["--index-url", s.exec_deps_pip_index_url]
            return [*argv, *deps]
        argv = ["/usr/bin/npm", "install", "--no-audit", "--no-fund", "--no-save",
                "--ignore-scripts", "--prefix", "deps"]  # fmt: skip
        if s.exec_deps_wheelhouse is not None:
            # Offline: name@version is the tarball `npm pack` makes (@scope/name -> scope-name).
            argv.append("--offline")
            tarballs = []
            for dep in deps:
                name, _, version = dep.rpartition("@")
                tarballs.append(f"{WHEELHOUSE}/{name.lstrip('@').replace('/', '-')}-{version}.tgz")
            return [*argv, *tarballs]
        if s.exec_deps_npm_registry:
            argv += ["--registry", s.exec_deps_npm_registry]
        return [*argv, *deps]

    async def _install(self, language: str, deps: Sequence[str], path: Path) -> Installed:
        s = self.settings
        if self._runtime is None:
            return Installed(None, "no sandbox runtime to install dependencies in")
        offline = s.exec_deps_wheelhouse is not None
        binds = {str(s.exec_deps_wheelhouse): WHEELHOUSE} if offline else {}
        max_bytes = s.exec_deps_max_mb * 1024 * 1024
        limits = ExecLimits(wall_s=s.exec_deps_install_timeout_s, cpu_s=s.exec_deps_install_timeout_s,
                            memory_mb=s.exec_deps_memory_mb, pids=256, output_bytes=256 * 1024,
                            file_size_bytes=max_bytes)  # fmt: skip
        env = {
            "HOME": "/tmp",
            "npm_config_cache": "/tmp/npm-cache",
            "PIP_NO_WARN_SCRIPT_LOCATION": "1",
        }
        self.installs += 1
        async with self._runtime.ephemeral(
            {"deps/.keep": b""}, network=not offline, memory_mb=s.exec_deps_memory_mb, pids=256,
            ro_binds=binds,
        ) as box:  # fmt: skip
            res = await box.exec(
                self._argv(language, deps), limits=limits, env=env, cwd=box.workspace_path
            )
            output = (res.stdout + res.stderr).decode("utf-8", errors="replace")[-8000:]
            if res.exit_code != 0 or res.limit_hit:
                stopped = (
                    f"\n[installation stopped: {res.limit_hit} limit reached]"
                    if res.limit_hit
                    else ""
                )
                return Installed(None, f"dependency installation failed:\n{output}{stopped}")
            packed = await box.exec(
                ["/bin/tar", "-C", "deps", "--exclude", "./.keep", "-cf", "-", "."],
                limits=ExecLimits(wall_s=60, cpu_s=60, output_bytes=max_bytes, pids=16),
                cwd=box.workspace_path,
            )  # fmt: skip
        if packed.stdout_truncated or packed.limit_hit == "output":
            return Installed(None, f"the dependencies are larger than {s.exec_deps_max_mb} MiB")
        if packed.exit_code != 0:
            return Installed(None, "dependency installation failed: cannot read the result")
        try:
            await asyncio.to_thread(self._store, packed.stdout, path)
        except tarfile.TarError as e:  # a link or a path out of the set (tarfile's data filter)
            return Installed(None, f"dependency installation failed: unsafe installed files: {e}")
        return Installed(path, output, installed_now=True)

    def _store(self, tar: bytes, path: Path) -> None:
        """Unpack (tarfile's ``data`` filter), make read-only, rename into place, evict."""
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(mode=0o700)
        try:
            with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
                tf.extractall(tmp, filter="data")
            for dirpath, dirnames, filenames in os.walk(tmp):
                for name in filenames:
                    p = os.path.join(dirpath, name)
                    if not os.path.islink(p):
                        mode = os.lstat(p).st_mode
                        os.chmod(p, 0o555 if mode & 0o111 else 0o444)
                    os.lchown(p, 0, 0)
                for name in dirnames:
                    os.lchown(os.path.join(dirpath, name), 0, 0)
                os.chmod(dirpath, 0o555)  # noqa: S103 (read-only, readable by sandboxes)
            os.lchown(tmp, 0, 0)
            os.chmod(tmp, 0o555)  # noqa: S103 (read-only, readable by sandboxes)
            try:
                os.rename(tmp, path)
            except OSError:  # another server got there first: the same content
                _remove(tmp)
        except BaseException:
            _remove(tmp)
            raise
        self._evict(keep=path)

    def _evict(self, keep: Path) -> None:
        """Least recently used sets first until the cache fits ``exec_deps_cache_mb``; a set used
        in the last hour is kept (a running job may have it mounted)."""
        limit = self.settings.exec_deps_cache_mb * 1024 * 1024
        entries = []
        total = 0
        for entry in self.root.iterdir():
            if entry.name.startswith("."):
                continue
            size = sum(
                os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(entry) for f in fs
            )
            entries.append((entry.stat().st_mtime, size, entry))
            total += size
        for mtime, size, entry in sorted(entries):
            if total <= limit:
                return
            if entry == keep or time.time() - mtime < 3600:
                continue
            _remove(entry)
            total -= size


def _remove(path: Path) -> None:
    for dirpath, _dirnames, _filenames in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o700)
    shutil.rmtree(path, ignore_errors=True)
