"""A bounded job queue shared fairly between users, served by a fixed pool of workers.

Jobs are execution ids (the job itself is in the database), each with its owner (the user).
At most ``workers`` jobs run at once, whatever the burst: the machine is never asked to run
more sandboxes than ``exec_workers`` at once (0 = two per core: jobs wait on I/O).

Fair share: each owner has its own FIFO sub-queue. A free worker takes the head job of the
owner with the fewest running jobs, ties going to the owner served longest ago (round robin).
So a user's batch of a thousand jobs cannot starve another user: the other's job takes the
next free worker, and from then on the workers are split evenly. The queue is
work-conserving: a user alone uses every worker. ``max_running_per_owner`` (0 = no cap) caps
one owner's running jobs even then, to keep workers free for newcomers. Within one owner,
jobs start in submission order.

When the queue holds ``max_size`` jobs (all owners together), ``submit`` refuses the whole
submission with a clear 503 rather than buffering without bound; when one owner has
``max_queued_per_owner`` jobs waiting, its submissions get 429, so no user fills the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from coolcoding.errors import RateLimited, Unavailable

log = logging.getLogger(__name__)

Handler = Callable[[int], Awaitable[None]]


def worker_count(configured: int) -> int:
    """``configured``, or 2 per core: a job spends much of its time waiting (the sandbox's
    set-up and teardown, the database), so one worker per core leaves cores idle."""
    return configured if configured > 0 else 2 * max(1, os.cpu_count() or 1)


def check_room(n: int, depth: int, waiting: int, max_size: int, cap: int, workers: int) -> None:
    """Raise the "queue full" errors unless ``n`` more jobs fit in a queue of ``depth`` jobs
    of which ``waiting`` are the submitter's (in memory, or the database queue's)."""
    if cap > 0 and waiting + n > cap:
        raise RateLimited(
            f"you have {waiting} jobs waiting; at most {cap} may wait "
            "(COOLCODING_EXEC_QUEUE_MAX_PER_USER): wait for some to finish",
            code="too_many_queued",
            limit=cap,
            setting="exec_queue_max_per_user",
            retry_after=max(1, waiting // max(1, workers * 10)),
        )
    if n > max(0, max_size - depth):
        raise Unavailable(
            f"the execution queue is full ({depth} jobs waiting); try again shortly",
            code="queue_full",
            retry_after=max(1, depth // max(1, workers * 10)),
        )


class FairScheduler:
    """Per-owner FIFO sub-queues; ``pick`` says which job starts next (pure, no I/O)."""

    def __init__(self, max_running_per_owner: int = 0) -> None:
        self.max_running_per_owner = max_running_per_owner
        self._pending: dict[int, deque[int]] = {}
        self._running: dict[int, int] = {}
        self._served: dict[int, int] = {}  # owner -> tick of its last start (round robin)
        self._tick = 0
        self.depth = 0

    def add(self, owner: int, job_id: int) -> None:
        self._pending.setdefault(owner, deque()).append(job_id)
        self.depth += 1

    def running(self, owner: int) -> int:
        return self._running.get(owner, 0)

    def pending(self, owner: int) -> int:
        queue = self._pending.get(owner)
        return len(queue) if queue is not None else 0

    def pick(self) -> tuple[int, int] | None:
        """(owner, job id) to start now, marked running; ``None`` when nothing may start."""
        cap = self.max_running_per_owner
        best: int | None = None
        for owner in self._pending:
            if cap > 0 and self.running(owner) >= cap:
                continue
            if best is None or (self.running(owner), self._served.get(owner, -1)) < (
                self.running(best),
                self._served.get(best, -1),
            ):
                best = owner
        if best is None:
            return None
        queue = self._pending[best]
        job_id = queue.popleft()
        if not queue:
            del self._pending[best]
        self.depth -= 1
        self._running[best] = self.running(best) + 1
        self._tick += 1
        self._served[best] = self._tick
        return best, job_id

    def done(self, owner: int) -> None:
        n = self.running(owner) - 1
        if n > 0:
            self._running[owner] = n
        else:
            self._running.pop(owner, None)
            if owner not in self._pending:
                self._served.pop(owner, None)  # forget idle owners: the table stays small


class JobQueue:
    def __init__(
        self,
        handler: Handler,
        *,
        workers: int,
        max_size: int,
        max_running_per_owner: int = 0,
        max_queued_per_owner: int = 0,
    ) -> None:
        self._handler = handler
        self.workers = worker_count(workers)
        self.max_size = max_size
        self.max_queued_per_owner = max_queued_per_owner
        self._scheduler = FairScheduler(max_running_per_owner)
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.running = 0

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet started)."""
        return self._scheduler.depth

    def free(self) -> int:
        return max(0, self.max_size - self.depth)

    def check_room(self, n: int, owner: int = 0) -> None:
        """Raise the "queue full" error unless ``n`` more jobs fit (429 when ``owner``'s own
        share is full: one user cannot fill the queue and shut everyone else out)."""
        check_room(n, self.depth, self._scheduler.pending(owner), self.max_size,
                   self.max_queued_per_owner, self.workers)  # fmt: skip

    def submit(self, job_ids: Sequence[int], owner: int = 0) -> None:
        """Enqueue all of ``owner``'s ``job_ids`` in order, or none of them (when they do not
        fit)."""
        self.check_room(len(job_ids), owner)
        for job_id in job_ids:
            self._scheduler.add(owner, job_id)
        self._changed.set()

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

    async def _next(self) -> tuple[int, int]:
        while True:
            picked = self._scheduler.pick()
            if picked is not None:
                return picked
            self._changed.clear()
            await self._changed.wait()

    async def _work(self) -> None:
        while True:
            owner, job_id = await self._next()
            self.running += 1
            try:
                await self._handler(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution %s: worker failed", job_id)
            finally:
                self.running -= 1
                self._scheduler.done(owner)
                self._changed.set()  # a capped owner may start another job now
