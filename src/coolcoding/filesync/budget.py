"""Bounded, fair sync work (finding 6 of issue 12): the sandbox's files are read by its agent in
chunks of ``sync_batch_files`` (one ``files.probe`` call each), never all at once, and each
session syncs at most ``sync_files_per_s`` entries per second, so a storm of files in one sandbox
cannot starve the API or other sessions."""

from __future__ import annotations

import asyncio

BURST_S = 0.25  # a session may run this far ahead of its rate before it waits


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
