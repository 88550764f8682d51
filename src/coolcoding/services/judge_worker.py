"""``coolcoding worker``: a judge worker process on the database queue (execution/db_queue.py).

It needs the database and the sandboxes of its own host, nothing of the server: it builds the
judge alone (no session sandboxes, no HTTP). SIGTERM or SIGINT drains it (see ``DbWorker``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from coolcoding.db.engine import Database
from coolcoding.execution.judge import Judge
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.execution.queue import worker_count
from coolcoding.sandbox.registry import make_runtime
from coolcoding.services.executions import ExecutionService
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, slots: int = 0) -> int:
    """Serve jobs until SIGTERM/SIGINT, then drain; returns the jobs this process finished."""
    if settings.exec_queue != "database":
        raise ValueError(
            "a worker process needs the database queue: COOLCODING_EXEC_QUEUE=database"
        )
    if slots > 0:
        settings = settings.model_copy(update={"exec_workers": slots})
    lock = None
    if settings.runtime == "local":
        from coolcoding.modeswitch import enter_judge_worker

        # its own identity (not the server's of the same data dir: see modeswitch.py)
        settings, lock = enter_judge_worker(settings)
    db = Database(settings)
    runtime = make_runtime(settings)
    await runtime.cleanup_orphans()  # a dead predecessor's job sandboxes (its lock is ours)
    languages = LanguageRegistry()
    await languages.detect_versions()
    judge = Judge(runtime, languages, settings)
    limiter = RateLimiter(settings.exec_rate_limit_per_minute, 60)
    svc = ExecutionService(db, settings, languages, judge, limiter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await svc.start_worker(embedded=True)
    assert svc.worker is not None and svc.dbq is not None
    log.info("judge worker %s: %d slots", svc.dbq.worker_id, worker_count(settings.exec_workers))
    print(f"worker {svc.dbq.worker_id} ready", flush=True)
    try:
        await stop.wait()
        log.info("judge worker: draining")
    finally:
        await svc.stop()
        await runtime.shutdown()
        await db.dispose()
        if lock is not None:
            os.close(lock)
    return svc.worker.done
