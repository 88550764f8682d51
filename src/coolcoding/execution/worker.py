"""Judge workers on the database queue (db_queue.py): embedded in ``coolcoding serve`` or
standalone (``coolcoding worker``, on this host or another one sharing the database).

A worker runs ``slots`` jobs at once. Each job's lease is renewed every third of
``exec_worker_lease_s`` while it runs; a job whose lease was lost (reaped after the database
was unreachable for a lease) is cancelled, its result would be fenced off anyway.
``drain`` (SIGTERM) stops claiming and lets the running jobs finish within
``exec_drain_timeout_s``; jobs still running then are put back in the queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any, Protocol

from coolcoding.db.models import Execution
from coolcoding.execution.db_queue import Claim, DbQueue
from coolcoding.execution.judge import JudgeResult
from coolcoding.execution.verdicts import Verdict
from coolcoding.settings import Settings

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobHost(Protocol):
    """What a worker needs of the execution service."""

    settings: Settings

    async def load(self, execution_id: int) -> Execution | None: ...

    async def run_job(self, row: Execution) -> JudgeResult: ...

    async def store(
        self,
        row: Execution,
        result: JudgeResult,
        attempt: int | None = None,
        *,
        current: bool = False,
    ) -> Execution | None: ...


class DbWorker:
    def __init__(self, svc: JobHost, queue: DbQueue, slots: int) -> None:
        self.svc = svc
        self.queue = queue
        self.slots = max(1, slots)
        self.settings = svc.settings
        self._wake = asyncio.Event()
        self._gen = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._reaper: asyncio.Task[None] | None = None
        self.inflight: dict[int, Claim] = {}
        self.done = 0  # jobs this worker finished (logs, tests)

    def wake(self) -> None:
        """New jobs may be waiting (a notification): idle slots try to claim at once."""
        self._gen += 1
        event, self._wake = self._wake, asyncio.Event()
        event.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._slot(), name=f"judge-worker-{i}") for i in range(self.slots)
        ]
        self._reaper = loop.create_task(self._reap_loop(), name="judge-reaper")

    async def _reap_loop(self) -> None:
        while not self._stopping:
            try:
                if await self.queue.reap():
                    self.wake()
            except Exception:
                log.warning("judge worker: reaping lapsed leases failed", exc_info=True)
            await asyncio.sleep(max(0.2, self.queue.lease_s / 2))

    async def _slot(self) -> None:
        poll = self.settings.exec_queue_poll_s
        while not self._stopping:
            event, gen = self._wake, self._gen
            try:
                claim = await self.queue.claim()
            except Exception:
                log.warning("judge worker: claiming a job failed", exc_info=True)
                claim = None
            if claim is None:
                if gen == self._gen and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), poll)
                continue
            await self._run(claim)

    async def _run(self, claim: Claim) -> None:
        self.inflight[claim.id] = claim
        try:
            # The claim returned the whole row: no second round trip to load it.
            row = claim.row if claim.row is not None else await self.svc.load(claim.id)
            if row is None:
                return
            job = asyncio.ensure_future(self.svc.run_job(row))
            renewer = asyncio.ensure_future(self._renew(claim, job))
            try:
                result = await job
            except asyncio.CancelledError:
                if renewer.done() and not renewer.cancelled():  # we lost the lease
                    log.warning("execution %s: lease lost; its result is dropped", claim.id)
                    return
                raise
            finally:
                renewer.cancel()
            retry = claim.attempt < self.settings.exec_max_attempts
            if result.verdict == Verdict.INTERNAL_ERROR and retry:
                log.warning("execution %s: internal error on try %d; re-queued: %s",
                            claim.id, claim.attempt, result.message)  # fmt: skip
                await self.queue.release(claim)
                return
            if await self.svc.store(row, result, attempt=claim.attempt, current=True) is not None:
                self.done += 1
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.release(claim))
            raise
        except Exception:
            log.exception("execution %s: the worker failed; its lease will lapse", claim.id)
        finally:
            self.inflight.pop(claim.id, None)

    async def _renew(self, claim: Claim, job: asyncio.Future[Any]) -> None:
        """Renew the lease until the job ends; cancel the job when the lease is lost."""
        every = max(0.1, self.queue.lease_s / 3)
        while True:
            await asyncio.sleep(every)
            try:
                ours = await self.queue.renew(claim)
            except Exception:
                log.warning("execution %s: renewing its lease failed", claim.id, exc_info=True)
                continue
            if not ours:
                job.cancel()
                return

    async def drain(self, timeout_s: float) -> None:
        """Stop claiming; wait up to ``timeout_s`` for running jobs, then put them back."""
        self._stopping = True
        self.wake()
        if self._reaper is not None:
            self._reaper.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                log.warning("judge worker: %d jobs still running after %.0f s; re-queued",
                            len(late), timeout_s)  # fmt: skip
                await asyncio.gather(*late, return_exceptions=True)
        if self._reaper is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        self._tasks = []
