"""The database job queue: judge workers in their own processes, on this host or others.

With ``exec_queue = "database"`` (PostgreSQL only) a judge job is its ``executions`` row and
nothing else: ``submit`` inserts it (status ``queued``, owner ``db-queue``) and a worker claims
it with ``SELECT ... FOR UPDATE SKIP LOCKED``. Why PostgreSQL rather than Redis streams or a
task library: it is no new service to run, back up or secure, and a claim, a lease renewal and
a result are each one transaction on the job's own row, so the queue can never disagree with
the job's status (a Redis entry acknowledged without its row written, or the reverse).
SQLite (embedded mode) keeps the in-process queue of ``queue.py``.

Delivery is at least once, a job finishes at most once:

- a claim sets ``status = running``, ``attempt + 1``, ``worker`` and ``lease_until`` (the
  visibility timeout, ``exec_worker_lease_s``); the worker renews the lease while it judges;
- a lease that lapses (the worker was killed, lost its database, hangs) puts the job back in
  the queue (``reap``, done by every worker as it polls); after ``exec_max_attempts`` tries it
  is finished as ``internal_error``;
- a result is written only if the row still holds the writer's ``attempt`` (fencing): a
  worker that lost its lease and finishes late writes nothing;
- only ``internal_error`` verdicts (the sandbox or the host failed, not the program) are
  retried; every other verdict is final.

Fair share: a claim takes the oldest queued job of the user with the fewest running jobs (and
``exec_max_running_per_user`` caps one user's running jobs, as in memory).

Wake-ups: ``submit`` sends ``NOTIFY cc_jobs`` in its transaction and a worker's result
``NOTIFY cc_done`` (payload: the id), received over one ``LISTEN`` connection per process;
workers also poll every ``exec_queue_poll_s`` (a missed notification, lapsed leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, inspect, text

from coolcoding.db.engine import Database
from coolcoding.db.models import Execution
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

DB_QUEUE_OWNER = "db-queue"  # the ``owner`` of rows in the database queue
JOBS_CHANNEL = "cc_jobs"
DONE_CHANNEL = "cc_done"

_TABLE = cast(Table, Execution.__table__)
# (attribute, column) of every mapped column: the claim returns the whole row, so the worker
# needs no second round trip to load it (issue 10).
_ATTRS = tuple((p.key, p.columns[0]) for p in inspect(Execution).column_attrs)
_RETURNING = ", ".join(f"executions.{col.name}" for _key, col in _ATTRS)

CLAIM = text(
    """
WITH running AS (
    SELECT user_id, count(*) AS n FROM executions
    WHERE status = 'running' AND owner = :owner GROUP BY user_id
), next AS (
    SELECT e.id FROM executions e LEFT JOIN running r ON r.user_id = e.user_id
    WHERE e.status = 'queued' AND e.owner = :owner
      AND (:cap <= 0 OR coalesce(r.n, 0) < :cap)
    ORDER BY coalesce(r.n, 0), e.id
    LIMIT 1
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE executions SET status = 'running', attempt = executions.attempt + 1, worker = :worker,
    lease_until = now() + make_interval(secs => :lease),
    started_at = coalesce(executions.started_at, now())
FROM next WHERE executions.id = next.id
RETURNING {returning}
""".replace("{returning}", _RETURNING)  # the model's column names: no input
).columns(*(col for _key, col in _ATTRS))  # typed: JSON, UUID, bytes come back decoded

RENEW = text(
    """
UPDATE executions SET lease_until = now() + make_interval(secs => :lease)
WHERE id = :id AND attempt = :attempt AND status = 'running' AND worker = :worker
"""
)

# Lapsed leases: jobs out of tries are finished, the others go back to the queue.
GIVE_UP = text(
    """
UPDATE executions SET status = 'finished', verdict = 'internal_error', worker = NULL,
    lease_until = NULL, completed_at = now(),
    message = 'the worker running it was lost ' || attempt || ' times; given up'
WHERE status = 'running' AND owner = :owner AND lease_until < now() AND attempt >= :max
RETURNING id
"""
)
REQUEUE = text(
    """
UPDATE executions SET status = 'queued', worker = NULL, lease_until = NULL
WHERE status = 'running' AND owner = :owner AND lease_until < now()
RETURNING id
"""
)

RELEASE = text(
    """
UPDATE executions SET status = 'queued', worker = NULL, lease_until = NULL
WHERE id = :id AND attempt = :attempt AND status = 'running'
"""
)

DEPTH = text(
    """
SELECT count(*), count(*) FILTER (WHERE user_id = :user) FROM executions
WHERE status = 'queued' AND owner = :owner
"""
)


@dataclass(frozen=True)
class Claim:
    id: int
    attempt: int
    # The claimed row as the claim left it (detached); None: load it.
    row: Execution | None = field(default=None, compare=False, repr=False)


class DbQueue:
    """The SQL of the database queue (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings, worker_id: str) -> None:
        if db.is_sqlite:
            raise ValueError(
                "exec_queue=database needs PostgreSQL (COOLCODING_DATABASE_URL); "
                "SQLite uses the in-process queue (exec_queue=memory)"
            )
        self.db = db
        self.settings = settings
        self.worker_id = worker_id

    @property
    def lease_s(self) -> float:
        return self.settings.exec_worker_lease_s

    async def depth(self, user_id: int) -> tuple[int, int]:
        """(jobs waiting in all, jobs of ``user_id`` waiting)."""
        async with self.db.session() as s:
            row = (await s.execute(DEPTH, {"user": user_id, "owner": DB_QUEUE_OWNER})).one()
        return int(row[0]), int(row[1])

    async def claim(self) -> Claim | None:
        params = {
            "owner": DB_QUEUE_OWNER,
            "cap": self.settings.exec_max_running_per_user,
            "worker": self.worker_id,
            "lease": self.lease_s,
        }
        # One statement (its row locks and update are atomic by themselves): autocommit,
        # straight on asyncpg (Database.write), its typed columns through SQLAlchemy's result
        # processors; the columns come back in _ATTRS's order.
        found = await self.db.write(CLAIM, params)
        if not found.rows:
            return None
        row = Execution(**{key: v for (key, _col), v in zip(_ATTRS, found.rows[0], strict=True)})
        return Claim(int(row.id), int(row.attempt), row)

    async def renew(self, claim: Claim) -> bool:
        """Extend ``claim``'s lease; ``False`` when the job is no longer ours."""
        params = {
            "id": claim.id,
            "attempt": claim.attempt,
            "worker": self.worker_id,
            "lease": self.lease_s,
        }
        async with self.db.session() as s:
            res = await s.execute(RENEW, params)
            await s.commit()
        return getattr(res, "rowcount", 0) == 1

    async def release(self, claim: Claim) -> None:
        """Put an unfinished job back in the queue at once (a drain that ran out of time)."""
        async with self.db.session() as s:
            await s.execute(RELEASE, {"id": claim.id, "attempt": claim.attempt})
            await s.execute(text("SELECT pg_notify(:c, '')"), {"c": JOBS_CHANNEL})
            await s.commit()

    async def reap(self) -> int:
        """Jobs whose lease lapsed: back in the queue (or given up); returns how many."""
        params = {"owner": DB_QUEUE_OWNER, "max": self.settings.exec_max_attempts}
        async with self.db.session() as s:
            gone = (await s.execute(GIVE_UP, params)).all()
            back = (await s.execute(REQUEUE, {"owner": DB_QUEUE_OWNER})).all()
            for (job_id,) in gone:
                await s.execute(
                    text("SELECT pg_notify(:c, :id)"), {"c": DONE_CHANNEL, "id": str(job_id)}
                )
            await s.commit()
        if gone or back:
            log.warning("judge queue: %d jobs of lost workers re-queued, %d given up",
                        len(back), len(gone))  # fmt: skip
        return len(gone) + len(back)


class PgListener:
    """One ``LISTEN`` connection: ``on_jobs()`` for new jobs, ``on_done(id)`` for results."""

    def __init__(
        self, db: Database, on_jobs: Callable[[], None], on_done: Callable[[int], None]
    ) -> None:
        self._dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._on_jobs = on_jobs
        self._on_done = on_done
        self._conn: Any = None

    async def start(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(JOBS_CHANNEL, self._jobs)
        await self._conn.add_listener(DONE_CHANNEL, self._done)

    def _jobs(self, *_args: Any) -> None:
        self._on_jobs()

    def _done(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._on_done(int(payload))

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 5)
            self._conn = None
