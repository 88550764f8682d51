"""A bounded, in-order job queue served by a fixed pool of workers.

Jobs are execution ids (the job itself is in the database). At most ``workers`` jobs run at
once, whatever the burst: the machine is never asked to run more sandboxes than it has cores
(``exec_workers``, 0 = one per core). Jobs start in submission order (FIFO). When the queue
holds ``max_size`` jobs, ``submit`` refuses the whole submission with a clear 503 rather
than buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

from coolcoding.errors import Unavailable

log = logging.getLogger(__name__)

Handler = Callable[[int], Awaitable[None]]


def worker_count(configured: int) -> int:
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


class JobQueue:
    def __init__(self, handler: Handler, *, workers: int, max_size: int) -> None:
        self._handler = handler
        self.workers = worker_count(workers)
        self.max_size = max_size
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.running = 0

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet started)."""
        return self._queue.qsize()

    def free(self) -> int:
        return max(0, self.max_size - self._queue.qsize())

    def check_room(self, n: int) -> None:
        """Raise the "queue full" error unless ``n`` more jobs fit."""
        if n > self.free():
            raise Unavailable(
                f"the execution queue is full ({self.depth} jobs waiting); try again shortly",
                code="queue_full",
                retry_after=max(1, self.depth // max(1, self.workers * 10)),
            )

    def submit(self, job_ids: Sequence[int]) -> None:
        """Enqueue all of ``job_ids`` in order, or none of them (when they do not fit)."""
        self.check_room(len(job_ids))
        for job_id in job_ids:
            self._queue.put_nowait(job_id)

    def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"exec-worker-{i}") for i in range(self.workers)
        ]

    async def stop(self) -> None:
        """Cancel the workers; a running job is cancelled (its sandbox is torn down by its own
        context manager) and stays "running" in the DB until the next start-up recovers it."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            self.running += 1
            try:
                await self._handler(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution %s: worker failed", job_id)
            finally:
                self.running -= 1
                self._queue.task_done()
