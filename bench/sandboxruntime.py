"""A ``LocalRuntime`` for the sandbox benches, the host facts they report beside their figures,
and where they write them."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ccserver import ROOT, write_result
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.settings import Settings


@asynccontextmanager
async def bench_runtime(suffix: str = "", **settings: Any) -> AsyncIterator[LocalRuntime]:
    """A runtime on a fresh data dir under /tmp and a cgroup parent of this process (``suffix``
    tells two runtimes apart), with ``settings``; on exit its sandboxes, any left over, its
    cgroups and the dir are removed."""
    base = Path(tempfile.mkdtemp(prefix="cc-bench-", dir="/tmp"))
    os.chmod(base, 0o711)
    rt = LocalRuntime(
        Settings(
            data_dir=base,
            sandbox_cgroup_parent=f"coolcoding-bench-{os.getpid()}{suffix}",
            **settings,
        )
    )
    try:
        yield rt
    finally:
        await rt.shutdown()
        await rt.cleanup_orphans()
        for d in set(rt.host.cgroups.bases.values()):
            if d.is_dir():
                os.rmdir(d)
        shutil.rmtree(base, ignore_errors=True)


def bare_bwrap_true_ms(bwrap: str, uid: int, gid: int) -> float:
    """One bare ``bwrap --unshare-all ... true`` as the sandbox's uid and gid (bwrap's own cost,
    the floor of a sandboxed exec), in ms."""

    def drop() -> None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    argv = [bwrap, "--unshare-all", "--die-with-parent",
            "--new-session", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib64",
            "/lib64", "--symlink", "usr/lib", "/lib", "--proc", "/proc", "--dev", "/dev",
            "--", "/usr/bin/true"]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(argv, preexec_fn=drop, check=True)
    return (time.perf_counter() - t) * 1000


def host_facts(rt: LocalRuntime) -> dict[str, Any]:
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cgroup_version": rt.host.cgroups.version,
        "bwrap": rt.host.bwrap_version,
    }


def write_figures(name: str, out: dict[str, Any]) -> None:
    """bench/results/<name>.json, and a line saying so."""
    write_result(name, out)
    print(f"wrote {ROOT / 'bench' / 'results' / f'{name}.json'}")
