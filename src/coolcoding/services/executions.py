"""Executions: judge jobs (queued, run in throw-away sandboxes) and runs in a session's sandbox.

Every job is a row of ``executions`` first (status queued -> running -> finished), then an id
in the in-memory ``JobQueue``, in the submitting user's sub-queue (fair share between users,
see ``execution/queue.py``). Start-up recovery (``recover``): jobs left "running" by a dead
server are marked ``internal_error``; "queued" judge jobs are re-queued in their original
order; "queued"/"running" session runs are marked ``internal_error`` (the browser that asked
for them is gone, and replaying a program into a live session unasked would surprise).
Across replicas each row names its ``owner`` (the replica whose in-memory queue or runner holds
it): recovery touches only rows without an owner or whose owner's replica lease lapsed, claims
the queued judge jobs it re-queues (one conditional ``UPDATE``, so two recovering replicas never
both run one), and runs again every ``lease_ttl_s`` to pick up the jobs of a replica that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuid_mod
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, Execution, utcnow
from coolcoding.errors import InvalidInput, NotFound, RateLimited, TooLarge, Unavailable
from coolcoding.execution.callbacks import CallbackSender, check_callback_url
from coolcoding.execution.db_queue import (
    DB_QUEUE_OWNER,
    DONE_CHANNEL,
    JOBS_CHANNEL,
    DbQueue,
    PgListener,
)
from coolcoding.execution.dependencies import validate_dependencies
from coolcoding.execution.judge import LIMIT_FIELDS, Judge, JudgeJob, JudgeResult, resolve_limits
from coolcoding.execution.judge0_format import DEFAULT_FIELDS, submission_json
from coolcoding.execution.languages import Language, LanguageRegistry
from coolcoding.execution.live import LiveHub
from coolcoding.execution.queue import JobQueue, check_room, worker_count
from coolcoding.execution.verdicts import Verdict
from coolcoding.execution.worker import DbWorker, new_worker_id
from coolcoding.filesync.paths import normalize_path
from coolcoding.sandbox.base import ExecLimits
from coolcoding.schemas.ws import RunOutput
from coolcoding.services.job_requests import JobRequest as JobRequest
from coolcoding.services.job_requests import (
    case_fields,
    entry_of,
    result_values,
    source_flag,
    testcases_of,
    text_limit,
)
from coolcoding.services.leases import LeaseService
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.services.session_runs import SessionRunner, result_event
from coolcoding.settings import Settings

log = logging.getLogger(__name__)


class Finished(asyncio.Event):
    """Set when an execution is finished; ``row``: its stored row when this process stored it.
    ``early``: registered before the job's row was committed, so it cannot have finished
    unseen (``wait`` needs no read of the row first)."""

    row: Execution | None = None
    early: bool = False


_TABLE = cast(Table, Execution.__table__)
_COLUMNS = tuple(c.key for c in inspect(Execution).column_attrs)
# Prepared once (their SQL is compiled once and cached): per job only parameters are bound,
# instead of building, hashing and compiling an ORM statement with its values each time.
CLAIM_QUEUED = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("eid"), _TABLE.c.status == "queued")
    .values(status="running", started_at=bindparam("started_at"))
)
_RESULT_COLUMNS = (
    "status", "verdict", "message", "stdout", "stderr", "compile_output", "exit_code", "signal",
    "wall_ms", "cpu_ms", "memory_kb", "case_results", "completed_at",
)  # fmt: skip
STORE_RESULT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("eid"))
    .values({c: bindparam(c) for c in _RESULT_COLUMNS})
)

# A watched job of the in-memory queue (``?wait=true``): no claim transaction; the job stays
# "queued" in the database while it runs and this one statement finishes it, only if it still is
# queued and this replica's (issue 10: one transaction of three per job). A server killed
# mid-job leaves it queued: the restart runs it again (at least once), and the condition lets
# one run only finish it.
FINISH_QUEUED = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("eid"),
        _TABLE.c.status == "queued",
        _TABLE.c.owner.is_not_distinct_from(bindparam("by_owner")),
    )
    .values({c: bindparam(c) for c in (*_RESULT_COLUMNS, "started_at")})
)

# A database-queue worker's result, fenced (only while the row still holds this try) and with
# its NOTIFY, as ONE statement (autocommit: no BEGIN/COMMIT round trips, no ORM session): the
# notification goes out at the statement's commit, and only if the row was updated (no row
# returned: the lease was lost, nothing written).
_FENCED = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("eid"),
        _TABLE.c.attempt == bindparam("attempt"),
        _TABLE.c.status == "running",
    )
    .values({c: bindparam(c) for c in (*_RESULT_COLUMNS, "worker", "lease_until")})
    .returning(_TABLE.c.id)
    .cte("stored")
)
STORE_FENCED_NOTIFY = select(
    func.pg_notify(literal(DONE_CHANNEL), _FENCED.c.id.cast(String))
).select_from(_FENCED)

INSERT_JOB = (
    insert(_TABLE).values({c: bindparam(c) for c in _COLUMNS if c != "id"}).returning(_TABLE.c.id)
)


def _complete(row: Execution) -> dict[str, Any]:
    """Give the not yet saved ``row`` every column's value (the model's defaults for those not
    set), so that it is whole in memory; returns them (the INSERT's parameters, but ``id``)."""
    defaults: dict[str, Any] = {"uuid": uuid_mod.uuid4(), "created_at": utcnow(), "attempt": 0,
                                "kind": "judge", "status": "queued"}  # fmt: skip
    values: dict[str, Any] = {}
    for c in _COLUMNS:
        if c == "id":
            continue
        if c not in row.__dict__ or (c in defaults and row.__dict__[c] is None):
            setattr(row, c, defaults.get(c))
        values[c] = getattr(row, c)
    return values


def _loaded(row: Execution) -> bool:
    """Whether every column of ``row`` is in memory (a copy of it needs no database read)."""
    return not inspect(row).unloaded


def _apply(row: Execution, values: dict[str, Any]) -> Execution:
    """``row`` (detached, whole in memory, this process's own) with ``values`` applied in place:
    what the database now holds. In place rather than a copy: building an instrumented
    ``Execution`` from every column twice per job cost ~0.4 ms of the event loop (issue 10)."""
    for c, v in values.items():
        setattr(row, c, v)
    return row


class ExecutionService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        languages: LanguageRegistry,
        judge: Judge,
        limiter: RateLimiter,
    ) -> None:
        self.db = db
        self.settings = settings
        self.languages = languages
        self.judge = judge
        self.limiter = limiter
        self.live = LiveHub()
        self.queue = JobQueue(
            self._process,
            workers=settings.exec_workers,
            max_size=settings.exec_queue_max,
            max_running_per_owner=settings.exec_max_running_per_user,
            max_queued_per_owner=settings.exec_queue_max_per_user,
        )
        self.runner = SessionRunner(self)
        self.callbacks = CallbackSender(settings)
        self._finished: dict[int, Finished] = {}
        # Rows saved by ``submit`` (in-memory queue) until a worker takes them.
        self._submitted: dict[int, Execution] = {}
        # Of those, the watched ones (``?wait=true``): claimed and finished in one statement.
        self._fold: set[int] = set()
        # Why sandboxes cannot run on this host, when they cannot (set by the wiring).
        self.unavailable: str | None = None
        # Replica leases (set by the wiring): recovery leaves live replicas' rows alone.
        self.leases: LeaseService | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # The database queue (db_queue.py); ``worker``: this process's, if embedded.
        self.dbq: DbQueue | None = None
        self.worker: DbWorker | None = None
        self._listener: PgListener | None = None
        if settings.exec_queue == "database":
            self.dbq = DbQueue(db, settings, new_worker_id())

    @property
    def owner(self) -> str | None:
        """The ``owner`` written on this replica's rows."""
        return self.leases.replica_id if self.leases is not None else None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.languages.detect_versions()
        if self.dbq is not None:
            await self.start_worker(embedded=self.settings.exec_embedded_worker)
        else:
            self.queue.start()
        await self.recover()
        if self.leases is not None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Recover the jobs of replicas that died while this one runs."""
        assert self.leases is not None
        while True:
            await asyncio.sleep(self.leases.ttl.total_seconds())
            try:
                await self.recover()
            except Exception:
                log.warning("recovering the jobs of dead replicas failed", exc_info=True)

    async def _orphaned(self) -> ColumnElement[bool]:
        """Which unfinished rows no live replica holds (no owner, or its lease lapsed)."""
        if self.leases is None:
            return Execution.id.is_not(None)
        async with self.db.session() as s:
            owners = {
                o
                for o in (
                    await s.scalars(
                        select(Execution.owner)
                        .where(Execution.status != "finished", Execution.owner.is_not(None))
                        .distinct()
                    )
                ).all()
                if o is not None and o != DB_QUEUE_OWNER  # the database queue's: leased
            }
        dead = [o for o in owners - await self.leases.live_replicas(owners) if o != self.owner]
        return or_(Execution.owner.is_(None), Execution.owner.in_(dead))

    async def start_worker(self, *, embedded: bool = True) -> None:
        """Listen for the database queue's notifications; run a worker when ``embedded``."""
        assert self.dbq is not None
        if embedded:
            self.worker = DbWorker(self, self.dbq, worker_count(self.settings.exec_workers))
        worker = self.worker
        self._listener = PgListener(
            self.db,
            on_jobs=worker.wake if worker is not None else lambda: None,
            on_done=self._done,
        )
        await self._listener.start()
        if worker is not None:
            worker.start()

    def _done(self, execution_id: int, fresh: Execution | None = None) -> None:
        """Wake the waiters of ``execution_id``; ``fresh``: its stored row (no re-read then)."""
        event = self._finished.pop(execution_id, None)
        if event is not None:
            event.row = fresh
            event.set()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.drain(self.settings.exec_drain_timeout_s)
        if self._listener is not None:
            await self._listener.stop()
        await self.callbacks.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.runner.stop()
        await self.queue.stop()

    async def recover(self) -> int:
        """See the module docstring; returns how many judge jobs were re-queued."""
        interrupted = {
            "status": "finished",
            "verdict": Verdict.INTERNAL_ERROR.value,
            "message": "interrupted by a server restart",
            "completed_at": utcnow(),
        }
        orphaned = await self._orphaned()
        async with self.db.session() as s:
            await s.execute(
                update(Execution)
                .where(Execution.status == "running", orphaned)
                .values(**interrupted)
            )
            await s.execute(
                update(Execution)
                .where(Execution.status == "queued", Execution.kind != "judge", orphaned)
                .values(**interrupted)
            )
            claimed = await s.execute(
                update(Execution)
                .where(Execution.status == "queued", orphaned)
                .values(owner=self.owner)
                .returning(Execution.id, Execution.user_id)
            )
            rows = sorted(claimed.all())
            # Each user's jobs back into their own sub-queue, in their original order, as many
            # as fit (in all, and per user); the others are finished with a message.
            room, cap = self.queue.free(), self.queue.max_queued_per_owner
            by_owner: dict[int, list[int]] = {}
            refused: list[int] = []
            for job_id, owner in rows:
                mine = by_owner.setdefault(int(owner), [])
                if room > 0 and (cap <= 0 or len(mine) < cap):
                    mine.append(int(job_id))
                    room -= 1
                else:
                    refused.append(int(job_id))
            if refused:
                await s.execute(
                    update(Execution)
                    .where(Execution.id.in_(refused))
                    .values(**{**interrupted, "message": "queue full after a server restart"})
                )
            await s.commit()
        for owner, ids in by_owner.items():
            if ids:
                self.queue.submit(ids, owner=owner)
        queued = len(rows) - len(refused)
        if queued:
            log.info("re-queued %d judge jobs after a restart", queued)
        return queued

    # --- validation -----------------------------------------------------------------------

    def language(self, language_id: str) -> Language:
        if self.unavailable:
            raise Unavailable(self.unavailable, code="sandbox_unavailable")
        lang = self.judge.language(language_id)
        if not self.languages.available(lang.id):
            raise Unavailable(
                f"{lang.name} is not installed on this server", code="language_unavailable"
            )
        return lang

    def _text_limit(self, name: str, value: str | None, maximum: int) -> bytes | None:
        return text_limit(name, value, maximum)

    def prepare(self, user_id: int, req: JobRequest) -> Execution:
        """A validated, not yet saved ``Execution`` row for ``req`` (raises clear 4xx errors)."""
        try:
            return self._prepare(user_id, req)
        except UnicodeEncodeError as exc:
            # JSON's "\ud800" escapes decode to lone surrogates, which no UTF-8 text holds.
            raise InvalidInput(
                "the job holds text that is not valid Unicode (a lone surrogate)",
                code="invalid_text",
            ) from exc

    def _prepare(self, user_id: int, req: JobRequest) -> Execution:
        lang = self.language(req.language)
        if (req.source is None) == (req.files is None):
            raise InvalidInput("give either source or files", code="invalid_source")
        if req.source is not None:
            files = {lang.source_name(req.source): req.source}
        else:
            assert req.files is not None
            files = {normalize_path(p): c for p, c in req.files.items()}
        if not files or all(not c.strip() for c in files.values()):
            raise InvalidInput("the source is empty", code="empty_source")
        size = sum(len(c.encode("utf-8")) for c in files.values())
        if size > self.settings.exec_max_source_bytes:
            raise TooLarge(
                f"the source is {size} bytes; the maximum is {self.settings.exec_max_source_bytes}",
                code="source_too_large",
                maximum=self.settings.exec_max_source_bytes,
            )
        entry = entry_of(lang, files, req.entry)
        limits = resolve_limits(req.limits, self.settings)
        deps = validate_dependencies(lang.id, req.dependencies, self.settings)
        return Execution(
            user_id=user_id,
            kind="judge",
            language=lang.id,
            status="queued",
            source={
                "files": files,
                "entry": entry,
                **({"judge0_base64": True} if req.judge0_base64 else {}),
                **({"dependencies": deps} if deps else {}),
            },
            stdin=text_limit("stdin", req.stdin, self.settings.exec_max_stdin_bytes),
            expected_output=text_limit(
                "expected_output", req.expected_output, self.settings.exec_max_output_bytes
            ),
            limits={k: getattr(limits, k) for k in LIMIT_FIELDS},
            owner=self.owner,
            testcases=testcases_of(req, self.settings, self.language, self.judge.connected_execs()),
            callback_url=req.callback_url,
        )

    async def _admit(self, user_id: int, n: int) -> None:
        """Per-user rate limit (``exec_rate_limit_per_minute``), then room in the queue."""
        key = f"user:{user_id}"
        used = await self.limiter.count(key)
        if used + n > self.limiter.limit:
            raise RateLimited(
                f"too many executions: at most {self.limiter.limit} per minute",
                retry_after=max(1, round(await self.limiter.blocked(key) + 0.5)),
            )
        for _ in range(n):
            await self.limiter.hit(key)

    # --- judge jobs -----------------------------------------------------------------------

    async def submit(
        self, user_id: int, requests: Sequence[JobRequest], *, watch: bool = False
    ) -> list[Execution]:
        """Validate all, admit all, save all, then queue all (in order), or refuse all.
        ``watch``: the caller will ``wait`` for them (their wake-ups are set up before the
        commit, so ``wait`` need not read the rows back first)."""
        if len(requests) > self.settings.exec_batch_max:
            raise TooLarge(
                f"at most {self.settings.exec_batch_max} jobs per batch", code="batch_too_large"
            )
        if not requests:
            raise InvalidInput("no jobs given", code="empty_batch")
        rows = [self.prepare(user_id, r) for r in requests]
        for url in {r.callback_url for r in requests if r.callback_url is not None}:
            await check_callback_url(url, self.settings)
        if self.dbq is not None:
            depth, mine = await self.dbq.depth(user_id)
            s = self.settings
            check_room(len(rows), depth, mine, s.exec_queue_max, s.exec_queue_max_per_user,
                       worker_count(s.exec_workers))  # fmt: skip
            for r in rows:
                r.owner = DB_QUEUE_OWNER
        else:
            self.queue.check_room(len(rows), user_id)
        await self._admit(user_id, len(rows))
        watched: list[int] = []
        try:
            # A Core connection, not an ORM session: the statements are prepared Core ones,
            # and a session (identity map, transaction bookkeeping) per job cost ~1 ms. One
            # row without the database queue's notify is one INSERT: no transaction around it
            # (``Database.write``; the job is queued only below, so its wake-up set up after
            # the commit is still there before it can finish).
            if len(rows) == 1 and self.dbq is None:
                row = rows[0]
                row.id = int((await self.db.write(INSERT_JOB, _complete(row))).scalar_one())
                if watch:
                    self._finished.setdefault(row.id, Finished()).early = True
                    watched.append(row.id)
            else:
                await self._insert_together(rows, watch, watched)
        except BaseException:
            for job_id in watched:
                self._finished.pop(job_id, None)
            raise
        if self.dbq is None:
            ids = [r.id for r in rows]
            self.queue.submit(ids, owner=user_id)
            # The worker starts from the row as saved (no read of it back), if still in memory.
            self._submitted.update((r.id, r) for r in rows if _loaded(r))
            if watch and self.settings.exec_fold_claim:
                self._fold.update(r.id for r in rows if r.id in self._submitted)
        return rows

    async def _insert_together(
        self, rows: Sequence[Execution], watch: bool, watched: list[int]
    ) -> None:
        """A batch's rows (and the database queue's notify) in one transaction; the wake-ups
        of watched ones are set up before its commit."""
        async with self.db.engine.begin() as session:
            # One prepared INSERT per row (no unit of work): the rows stay whole in memory.
            for r in rows:
                res = await session.execute(INSERT_JOB, _complete(r))
                r.id = int(res.scalar_one())
            if watch:
                for r in rows:
                    event = self._finished.setdefault(r.id, Finished())
                    event.early = True
                    watched.append(r.id)
            if self.dbq is not None:
                await session.execute(text("SELECT pg_notify(:c, '')"), {"c": JOBS_CHANNEL})

    async def load(self, execution_id: int) -> Execution | None:
        async with self.db.session() as s:
            return await s.get(Execution, execution_id)

    async def _process(self, execution_id: int) -> None:
        """A queue worker's job: claim it (exactly once), judge it, store the result."""
        saved = self._submitted.pop(execution_id, None)
        folded = execution_id in self._fold
        self._fold.discard(execution_id)
        if saved is not None and folded:
            await self._run_folded(saved)
            return
        if saved is not None:
            started = {"status": "running", "started_at": utcnow()}
            res = await self.db.write(CLAIM_QUEUED, {"eid": execution_id, **started})
            if res.rowcount != 1:
                return  # not queued any more (another replica's recovery took it)
            running = _apply(saved, started)
            await self.finish(running, await self.run_job(running), current=True)
            return
        async with self.db.session() as s:
            claimed = await s.execute(
                update(Execution)
                .where(Execution.id == execution_id, Execution.status == "queued")
                .values(status="running", started_at=utcnow())
                .returning(Execution),
                # A fresh session holds no Execution to update in place: skip the evaluation.
                execution_options={"synchronize_session": False},
            )
            row = claimed.scalar_one_or_none()
            await s.commit()
        if row is None:
            return
        await self.finish(row, await self.run_job(row))

    async def _run_folded(self, saved: Execution) -> None:
        """A watched job without its claim transaction (see ``FINISH_QUEUED``)."""
        started = {"status": "running", "started_at": utcnow()}
        running = _apply(saved, started)
        result = await self.run_job(running)
        values = {**result_values(result), "started_at": started["started_at"]}
        # One UPDATE: it wrote nothing if no row
        res = await self.db.write(
            FINISH_QUEUED, {"eid": saved.id, "by_owner": self.owner, **values}
        )
        if res.rowcount != 1:
            log.warning("execution %s: taken by another replica; result dropped", saved.id)
            return
        self._stored(_apply(saved, values))

    async def run_job(self, row: Execution) -> JudgeResult:
        """Judge ``row``'s job; never raises but for cancellation."""
        execution_id = row.id
        try:
            source = row.source or {}
            limits = ExecLimits(**(row.limits or {}))
            job = JudgeJob(
                language=row.language,
                files={p: c.encode("utf-8") for p, c in source.get("files", {}).items()},
                entry=str(source.get("entry")),
                limits=limits,
                stdin=row.stdin or b"",
                expected_output=row.expected_output,
                cache_scope=f"user:{row.user_id}",
                dependencies=tuple(source.get("dependencies", ())),
                **case_fields(row, self.languages),
            )
            result = await self.judge.judge(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("execution %s failed", execution_id)
            result = JudgeResult(Verdict.INTERNAL_ERROR, "internal error while judging")
        return result

    async def finish(
        self, row: Execution, result: JudgeResult, *, current: bool = False
    ) -> Execution:
        fresh = await self.store(row, result, current=current)
        assert fresh is not None  # unfenced: always written
        return fresh

    async def store(
        self,
        row: Execution,
        result: JudgeResult,
        attempt: int | None = None,
        *,
        current: bool = False,
    ) -> Execution | None:
        """Store ``result``. With ``attempt`` (the database queue) only if the row still is
        that try's (fencing: a worker that lost its lease writes nothing; ``None`` then).
        ``current``: ``row`` is what the database holds (the in-memory queue's claimed copy, a
        database-queue worker's claimed row: only its lease changes meanwhile, and the store
        clears it), so the stored row is built from it rather than read back."""
        values = result_values(result)
        if current and attempt is None and _loaded(row):
            return await self._store_fast(row, values)
        if current and attempt is not None and self.dbq is not None and _loaded(row):
            # A worker's claimed row, whole in memory as the claim returned it: one fenced
            # statement with its NOTIFY, the stored row built from it.
            values.update(worker=None, lease_until=None)
            stored = await self.db.write(
                STORE_FENCED_NOTIFY, {"eid": row.id, "attempt": attempt, **values}
            )
            if not stored.rows:
                log.warning("execution %s: try %s lost its lease; result dropped", row.id, attempt)
                return None
            done = _apply(row, values)
            self._stored(done)
            return done
        where = [Execution.id == row.id]
        if attempt is not None:
            where += [Execution.attempt == attempt, Execution.status == "running"]
            values.update(worker=None, lease_until=None)
        async with self.db.session() as s:
            # One round trip: the stored row comes back with RETURNING.
            res = await s.execute(
                update(Execution).where(*where).values(**values).returning(Execution),
                execution_options={"populate_existing": True, "synchronize_session": False},
            )
            fresh = res.scalar_one_or_none()
            if fresh is None:
                await s.rollback()
                log.warning("execution %s: try %s lost its lease; result dropped", row.id, attempt)
                return None
            if self.dbq is not None:
                await s.execute(
                    text("SELECT pg_notify(:c, :id)"), {"c": DONE_CHANNEL, "id": str(row.id)}
                )
            await s.commit()
        self._stored(fresh)
        return fresh

    async def _store_fast(self, row: Execution, values: dict[str, Any]) -> Execution:
        """``store`` with one prepared UPDATE and no RETURNING: the stored row is ``row`` (all
        of it in memory, as the database holds it) with ``values`` applied."""
        # One UPDATE (no transaction around it) unless the database queue's notify follows.
        if self.dbq is None:
            await self.db.write(STORE_RESULT, {"eid": row.id, **values})
        else:
            async with self.db.engine.begin() as conn:
                await conn.execute(STORE_RESULT, {"eid": row.id, **values})
                await conn.execute(
                    text("SELECT pg_notify(:c, :id)"), {"c": DONE_CHANNEL, "id": str(row.id)}
                )
        fresh = _apply(row, values)
        self._stored(fresh)
        return fresh

    def _stored(self, fresh: Execution) -> None:
        self._done(fresh.id, fresh)
        if fresh.callback_url:
            body = submission_json(fresh, DEFAULT_FIELDS, b64=bool(source_flag(fresh)))
            self.callbacks.deliver(fresh.callback_url, body)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, user_id: int, raw_id: str) -> Execution:
        """The user's execution by its public id; another user's answers 404 like a missing one."""
        try:
            uid = uuid_mod.UUID(raw_id)
        except ValueError as exc:
            raise NotFound("no such execution", code="execution_not_found") from exc
        async with self.db.session() as s:
            row = await s.scalar(
                select(Execution).where(Execution.uuid == uid, Execution.user_id == user_id)
            )
        if row is None:
            raise NotFound("no such execution", code="execution_not_found")
        return row

    async def get_any(self, raw_id: str) -> Execution | None:
        """The execution by its public id, whoever ran it (the caller checks access)."""
        try:
            uid = uuid_mod.UUID(raw_id)
        except ValueError:
            return None
        async with self.db.session() as s:
            row: Execution | None = await s.scalar(select(Execution).where(Execution.uuid == uid))
            return row

    async def get_many(self, user_id: int, raw_ids: Sequence[str]) -> dict[str, Execution]:
        """The user's executions among ``raw_ids`` (by public id); others are left out."""
        ids: list[uuid_mod.UUID] = []
        for raw in raw_ids:
            with contextlib.suppress(ValueError):
                ids.append(uuid_mod.UUID(raw))
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Execution).where(Execution.uuid.in_(ids), Execution.user_id == user_id)
            )
            return {str(r.uuid): r for r in rows.all()}

    async def wait(self, row: Execution, timeout_s: float) -> Execution:
        """``row`` once finished, or as it is after ``timeout_s``."""
        event = self._finished.setdefault(row.id, Finished())
        if not event.early:  # it may have finished before this event was there
            async with self.db.session() as s:
                fresh = await s.get(Execution, row.id)
            if fresh is not None and fresh.status == "finished":
                self._finished.pop(row.id, None)
                return fresh
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)
        if event.row is not None:
            return event.row
        async with self.db.session() as s:
            fresh = await s.get(Execution, row.id)
        return fresh or row

    async def list_for(self, user_id: int, limit: int, offset: int) -> list[Execution]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(Execution)
                .where(Execution.user_id == user_id)
                .order_by(Execution.created_at.desc(), Execution.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(rows.all())

    async def follow(self, row: Execution) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The events of ``row`` (see ``api/routes/executions.py``): live when it runs in this
        process, else (queued judge job, or another replica's) once it is finished, from the DB;
        ``ping`` every 15 s meanwhile."""
        live = self.live.get(str(row.uuid))
        if live is not None:
            async for event in live.follow():
                yield event
            return
        while row.status != "finished":
            row = await self.wait(row, 15.0)
            if row.status != "finished":
                yield "ping", {}
        for name, data in (("stdout", row.stdout), ("stderr", row.stderr)):
            if data:
                yield name, RunOutput(data=data.decode("utf-8", errors="replace")).as_dict()
        yield "result", result_event(row)

    # --- runs in a session ----------------------------------------------------------------

    async def run_in_session(
        self,
        user_id: int,
        session: CodeSession,
        path: str | None,
        stdin: str | None,
        stdin_path: str | None = None,
    ) -> Execution:
        return await self.runner.start(user_id, session, path, stdin, stdin_path)
