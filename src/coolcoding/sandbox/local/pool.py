"""The warm pool: pre-started throw-away sandboxes for ``LocalRuntime.ephemeral`` (judge jobs).

Each pooled sandbox is what ``ephemeral`` would build (a fresh workspace dir, /etc, session
cgroup, uid) plus its first exec already spawned as a zygote (zygote.py) in the ``exec-1``
cgroup, so a job's first exec skips bwrap's set-up, the cgroup migration and the /etc copy.
A pooled sandbox serves exactly one job and is destroyed with it; the pool only ever hands out
sandboxes nobody has used. Network-enabled ephemerals always take the normal path.

Refill: one sandbox at a time in the background, started when a job ends (so the pool spends
about the CPU the normal path would have spent per job, and not while that job runs: a spawn
forks on the event loop's thread), never more than ``size`` kept. A
failed start stops refilling for ``RETRY_AFTER_S`` instead of retrying in a loop.

Accounting: the exec's cgroup counters are reset at release (cgroups.reset_accounting), so
cpu_ms and memory_kb cover the program, not the zygote's set-up; on cgroup v2 kernels older
than 6.12 (no per-fd memory.peak reset) the peak includes the zygote's few MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from coolcoding.sandbox.local.sandbox import LocalSandbox

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5.0


def _zygote_usable(sb: LocalSandbox) -> bool:
    return sb.warm is not None and sb.warm.usable()


class WarmPool:
    def __init__(
        self,
        size: int,
        make: Callable[[], Coroutine[Any, Any, LocalSandbox]],
        destroy: Callable[[LocalSandbox], Coroutine[Any, Any, None]],
        abandon: Callable[[LocalSandbox], None],
        usable: Callable[[LocalSandbox], bool] | None = None,
    ) -> None:
        self.size = size
        self._usable = usable or _zygote_usable
        self._make = make
        self._destroy = destroy
        self._ready: deque[LocalSandbox] = deque()
        self._filler: asyncio.Task[None] | None = None
        self._closed = False
        self._failed_at = 0.0
        self._destroying: set[asyncio.Task[None]] = set()
        self._abandon = abandon
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def names(self) -> set[str]:
        return {sb.spec.session_uuid for sb in self._ready}

    def __len__(self) -> int:
        return len(self._ready)

    def _check_loop(self) -> None:
        """Pooled processes are watched by the event loop that started them. A runtime used
        from another loop (tests with a loop per test) drops them, synchronously, and refills
        on the new loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            while self._ready:
                self._abandon(self._ready.popleft())
            self._filler = None
            self._destroying = set()
        self._loop = loop

    def claim(self) -> LocalSandbox | None:
        """A ready, never-used sandbox (removed from the pool), or ``None``. The caller refills
        once its job is done, so starting the next sandbox never competes with this job."""
        self._check_loop()
        found: LocalSandbox | None = None
        while self._ready and found is None:
            sb = self._ready.popleft()
            if self._usable(sb):
                found = sb
            else:  # e.g. its zygote died (killed from outside): never hand it out
                task = asyncio.get_running_loop().create_task(self._destroy(sb))
                self._destroying.add(task)
                task.add_done_callback(self._destroying.discard)
        return found

    def give_back(self, sb: LocalSandbox) -> bool:
        """Return a claimed sandbox nobody used (False: the pool is full or closed, or it is
        not usable any more; the caller destroys it)."""
        if self._closed or len(self._ready) >= self.size or not self._usable(sb):
            return False
        self._ready.appendleft(sb)
        return True

    def refill(self) -> None:
        self._check_loop()
        if self._closed or self.size <= 0 or len(self._ready) >= self.size:
            return
        if self._filler is not None and not self._filler.done():
            return
        if time.monotonic() - self._failed_at < RETRY_AFTER_S:
            return
        self._filler = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        while not self._closed and len(self._ready) < self.size:
            try:
                sb = await self._make()
            except Exception:
                log.warning("warm sandbox pool: could not start a sandbox", exc_info=True)
                self._failed_at = time.monotonic()
                return
            if self._closed:
                await self._destroy(sb)
                return
            self._ready.append(sb)

    async def wait_full(self, timeout_s: float = 10.0) -> None:
        """Until the pool holds ``size`` sandboxes (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        self.refill()
        while len(self._ready) < self.size:
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm pool: {len(self._ready)}/{self.size} after {timeout_s}s")
            self.refill()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Destroy every pooled sandbox (server shutdown); the pool stays empty afterwards."""
        self._closed = True
        self._check_loop()
        if self._filler is not None:  # not cancelled: it destroys what it was starting
            with contextlib.suppress(Exception):
                await self._filler
        while self._ready:
            await self._destroy(self._ready.popleft())
        if self._destroying:
            await asyncio.gather(*self._destroying, return_exceptions=True)
