"""What the history benches (bench_history, bench_save_cpu, bench_restore_ab) share: servers
with history on and off side by side under ``httpload``'s load, and a 9,900-file workspace with
a snapshot in which every file differs."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench_api import _pg, start_server
from httpload import Request, run_load

MakeRequest = Callable[[int, int], Request]
# A server under load: its process, port, PostgreSQL database (None on SQLite), request maker.
LoadedServer = tuple[subprocess.Popen[bytes], int, str | None, MakeRequest]


def start_servers(
    servers: dict[str, LoadedServer],
    backend: str,
    envs: Mapping[str, Mapping[str, str]],
    tmp: Path,
    setup: Callable[[int, int], MakeRequest],
    connections: int,
) -> None:
    """One server per mode of ``envs`` (mode -> its environment), in that order, into
    ``servers`` (the caller's, which it stops in a ``finally`` even when a start fails);
    ``setup(port, connections)`` prepares each server's users and files and returns its request
    maker."""
    for mode, env in envs.items():
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        port = 18000 + secrets.randbelow(1000)
        try:
            proc, _url, pg_name = start_server(backend, tmp / mode, port)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        servers[mode] = (proc, port, pg_name, setup(port, connections))


def warm_up(servers: Mapping[str, LoadedServer], connections: int, rate: float) -> None:
    """Two seconds of the load at the measured rate on each server, not measured."""
    for _, port, _, make in servers.values():
        asyncio.run(
            run_load("127.0.0.1", port, make, connections=connections, duration_s=2, rate=rate)
        )


def stop_servers(servers: Mapping[str, LoadedServer]) -> None:
    for proc, _port, pg_name, _ in servers.values():
        proc.terminate()
        proc.wait(timeout=10)
        if pg_name:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def workspace_files() -> list[tuple[str, bytes]]:
    """9,900 small files in 100 folders (10,000 items with the folders)."""
    return [
        (f"dir{i % 100:03d}/file{i:05d}.py", f"print({i})\n".encode() * 10) for i in range(9_900)
    ]


async def seed_without_history(
    ws: Any, settings: Any, ref: Any, files: list[tuple[str, bytes]]
) -> None:
    """Create ``files`` in ``ref``'s workspace with history off (seeding is not measured), then
    turn history back on."""
    settings.history_enabled = False
    for k in range(0, len(files), 1000):
        await ws.create_files(ref, files[k : k + 1000])
    settings.history_enabled = True


async def every_file_changed_snapshot(
    db: Any, ws: Any, snaps: Any, settings: Any, ref: Any, ref2: Any, files: list[tuple[str, bytes]]
) -> Any:
    """A snapshot of ``files`` with every file changed, taken in another session (``ref2``) and
    handed over to ``ref``'s session, so that a restore of it in ``ref`` changes every file."""
    await seed_without_history(ws, settings, ref2, [(p, c + b"# v2\n") for p, c in files])
    other = await snaps.create(ref2, "other")
    async with db.session() as s:
        await s.execute(
            text("UPDATE snapshots SET session_id = :sid WHERE id = :id"),
            {"sid": ref.session_id, "id": other.id},
        )
        await s.commit()
    return other
