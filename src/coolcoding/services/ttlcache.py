"""A small in-process cache of recent answers (login tokens, workspace roles) for hot paths.

- Entries live ``ttl_s`` seconds (0: nothing is cached, every call loads).
- Single flight: concurrent misses of one key share one load (under load, a token's entry
  expiring made every request in flight query the database at once).
- Invalidation wins over loads in flight: ``forget`` bumps a generation, and a load that
  started before it does not store its (possibly stale) answer; callers that joined it still get
  that answer, as they would have without the cache.
- A failed load is not cached (its exception goes to every caller that joined it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._generation = 0

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        if self.ttl_s <= 0:
            return await load()
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[1] < self.ttl_s:
            return hit[0]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load, self._generation))
            self._loading[key] = task
        # shield: a caller cancelled (client gone) does not cancel the others' load
        return await asyncio.shield(task)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]], generation: int) -> V:
        try:
            value = await load()
        finally:
            if generation == self._generation:
                self._loading.pop(key, None)
        if generation == self._generation:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (value, time.monotonic())
        return value

    def forget(self, match: Callable[[K, V], bool] | None = None) -> None:
        """Drop the entries ``match`` selects (all without one). Loads in flight store nothing,
        and calls from now on do not join them: they load again."""
        self._generation += 1
        self._loading.clear()
        if match is None:
            self._entries.clear()
        else:
            self._entries = {k: v for k, v in self._entries.items() if not match(k, v[0])}
