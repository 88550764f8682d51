"""Sliding-window rate limits: in-process, or in Redis when configured (shared by every replica).

Exact sliding window (a log of the last ``limit`` event times per key), not fixed windows: a fixed
window lets 2x the limit through across a window boundary and resets a lock-out at the boundary.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any


class RateLimiter:
    """``hit(key)`` records one event; ``blocked(key)`` says how long until ``key`` may act again."""

    def __init__(self, limit: int, window_s: float, redis: Any = None, prefix: str = "rl") -> None:
        self.limit = limit
        self.window_s = window_s
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, deque[float]] = {}

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def _recent(self, key: str, now: float) -> deque[float]:
        log = self._local.get(key)
        if log is None:
            return deque()
        while log and log[0] <= now - self.window_s:
            log.popleft()
        if not log:
            del self._local[key]
        return log

    async def count(self, key: str) -> int:
        now = time.time()
        if self.redis is not None:
            k = self._key(key)
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(k, 0, now - self.window_s)
            pipe.zcard(k)
            _, n = await pipe.execute()
            return int(n)
        return len(self._recent(key, now))

    async def hit(self, key: str) -> int:
        """Record an event now; returns how many events ``key`` has in the window."""
        now = time.time()
        if self.redis is not None:
            k = self._key(key)
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(k, 0, now - self.window_s)
            pipe.zadd(k, {f"{now}:{uuid.uuid4().hex[:8]}": now})
            # Only the newest `limit` events matter for the decision: keep memory bounded.
            pipe.zremrangebyrank(k, 0, -(self.limit + 1))
            pipe.zcard(k)
            pipe.expire(k, int(self.window_s) + 1)
            res = await pipe.execute()
            return int(res[3])
        log = self._recent(key, now)
        if not log:
            self._local[key] = log
            if len(self._local) > 100_000:  # bound memory under a flood of distinct keys
                for stale in [
                    k for k, v in self._local.items() if not v or v[-1] <= now - self.window_s
                ]:
                    del self._local[stale]
        log.append(now)
        while len(log) > self.limit:
            log.popleft()
        return len(log)

    async def blocked(self, key: str) -> float:
        """Seconds until ``key`` may act again; 0 when it may act now."""
        now = time.time()
        if self.redis is not None:
            k = self._key(key)
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(k, 0, now - self.window_s)
            pipe.zrange(k, 0, 0, withscores=True)
            pipe.zcard(k)
            _, oldest, n = await pipe.execute()
            if int(n) < self.limit or not oldest:
                return 0.0
            return max(0.0, float(oldest[0][1]) + self.window_s - now)
        log = self._recent(key, now)
        if len(log) < self.limit:
            return 0.0
        return max(0.0, log[0] + self.window_s - now)

    async def newest(self, key: str) -> float | None:
        """Time (epoch seconds) of ``key``'s latest event in the window, if any."""
        now = time.time()
        if self.redis is not None:
            k = self._key(key)
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(k, 0, now - self.window_s)
            pipe.zrange(k, -1, -1, withscores=True)
            _, latest = await pipe.execute()
            return float(latest[0][1]) if latest else None
        log = self._recent(key, now)
        return log[-1] if log else None

    async def reset(self, key: str) -> None:
        if self.redis is not None:
            await self.redis.delete(self._key(key))
        else:
            self._local.pop(key, None)
