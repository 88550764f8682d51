"""A ``LocalRuntime`` for the sandbox benches, the host facts they report beside their figures,
and where they write them."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ccserver import ROOT, write_result
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.settings import Settings


@asynccontextmanager
async def bench_runtime(**settings: Any) -> AsyncIterator[LocalRuntime]:
    """A runtime on a fresh data dir under /tmp and a cgroup parent of this process (plus
    ``settings``); on exit its sandboxes, any left over, its cgroups and the dir are removed."""
    base = Path(tempfile.mkdtemp(prefix="cc-bench-", dir="/tmp"))
    os.chmod(base, 0o711)
    rt = LocalRuntime(
        Settings(data_dir=base, sandbox_cgroup_parent=f"coolcoding-bench-{os.getpid()}", **settings)
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
