"""Two ``coolcoding serve`` replicas for a bench: one fresh PostgreSQL database (127.0.0.1:5432)
and a Redis of their own, each replica with its own data dir; everything is removed on exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench_agent_terminal import Serve
from bench_replicas import free_port, pg, wait_healthy


@contextlib.contextmanager
def two_replicas(label: str, **settings: str) -> Iterator[list[Serve]]:
    """Both replicas up and healthy; ``settings`` are extra ``COOLCODING_*`` settings of both."""
    root = Path(tempfile.mkdtemp(prefix=f"ccbench-{label}-"))
    os.chmod(root, 0o755)
    db = f"ccbench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(pg(f'CREATE DATABASE "{db}"'))
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(root)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    parent = f"coolcoding-bench-{label}-{os.getpid()}"
    replicas: list[Serve] = []
    try:
        for i in range(2):
            data = root / f"replica-{i}"
            data.mkdir()
            port = free_port()
            srv = Serve(
                str(data), parent, port,
                database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
                replica_address=f"http://127.0.0.1:{port}",
                sandbox_keep_on_shutdown="false", db_pool_size="3",
                **settings,
            )  # fmt: skip
            wait_healthy(srv)
            replicas.append(srv)
        yield replicas
    finally:
        for r in replicas:
            r.proc.terminate()
            r.proc.wait(60)
        redis.terminate()
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
