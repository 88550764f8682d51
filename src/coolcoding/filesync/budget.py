"""Bounded, fair sync work (finding 6 of issue 12): file system reads happen in a worker thread in
chunks, never on the event loop, and each session syncs at most ``sync_files_per_s`` entries per
second, so a storm of files in one sandbox cannot starve the API or other sessions."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from coolcoding.filesync.hostfs import WorkspaceDir

BURST_S = 0.25  # a session may run this far ahead of its rate before it waits


@dataclass
class Probe:
    """One entry as the sync sees it: its lstat, and a regular file's content (within the limit
    and readable; ``None`` otherwise)."""

    info: os.stat_result | None
    data: bytes | None = None


def lstat_all(wdir: WorkspaceDir, paths: Sequence[str]) -> dict[str, os.stat_result | None]:
    return {p: wdir.lstat(p) for p in paths}


def probe_all(wdir: WorkspaceDir, paths: Sequence[str], limit: int) -> dict[str, Probe]:
    """lstat and read ``paths`` (run it in a thread: this is the heavy part of a sync)."""
    out: dict[str, Probe] = {}
    for p in paths:
        info = wdir.lstat(p)
        data = None
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_size <= limit:
            try:
                data = wdir.read(p, limit)
            except OSError:
                data = None
        out[p] = Probe(info, data)
    return out


def walk_paths(wdir: WorkspaceDir, rel: str = "") -> list[str]:
    return [p for p, _ in wdir.walk(rel)]


class Pacer:
    """A per-session leaky bucket: ``spend(n)`` waits until ``n`` more entries fit the rate (and
    always yields to the event loop)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = max(1, per_second)
        self._free_at = 0.0

    async def spend(self, n: int) -> None:
        now = asyncio.get_running_loop().time()
        self._free_at = max(self._free_at, now) + n / self.per_second
        await asyncio.sleep(max(0.0, self._free_at - now - BURST_S))
