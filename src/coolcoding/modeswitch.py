"""Switching a data dir between ``coolcoding serve`` and ``coolcoding serve --workers N``.

The two modes keep their sandboxes under different identities: ``serve`` is the server of
``<data_dir>`` (``<data_dir>/server-id``), worker k of ``--workers`` the server of
``<data_dir>/workers/<k>``. Each one's start-up clean-up (``LocalRuntime.cleanup_orphans``)
touches only its own identity, so what a killed process of one mode left (sandbox processes and
their cgroups, mounted workspace images and their loop devices, pooled zygotes, /etc roots,
``sandbox-state`` files, ``running`` session rows) stayed forever once the data dir was started
in the other mode.

Each live process holds a lock file (``flock``: released by the kernel when the process dies,
however it dies): ``serve`` holds ``<data_dir>/serve.lock``, the supervisor of ``--workers``
``<data_dir>/workers/.lock`` and each worker ``<data_dir>/workers/<k>/worker.lock``. At its start
each mode takes the other mode's locks it can get (not blocking) and, holding them, reclaims
that identity's leftovers: first the files of its running sessions go into the database (the
sync engine's recovery, as at a restart of that mode: what was written after the dead server's
last sync is not lost), then its sandboxes are removed. An identity whose lock is held belongs
to a live process and is never touched. Sessions whose lease a live replica holds (it took the sandbox over) are kept.

A judge worker (``coolcoding worker``) shared the identity of ``serve`` on the same data dir:
its shutdown's clean-up removed the live server's sandboxes, and a dead one's job sandboxes were
nobody's. Each now is the server of ``<data_dir>/judge-workers/<k>`` (the first k whose
``worker.lock`` it can take; a dead predecessor's leftovers there are its own to clean at start)
and ``serve`` / ``--workers`` reclaim the dirs whose lock is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coolcoding.settings import Settings

log = logging.getLogger(__name__)

SERVE_LOCK = "serve.lock"
SUPERVISOR_LOCK = ".lock"  # in <data_dir>/workers (the name ``serve --workers`` always used)
WORKER_LOCK = "worker.lock"
JUDGE_WORKERS = "judge-workers"  # <data_dir>/judge-workers/<k>: one ``coolcoding worker`` each
LOCK_WAIT_S = 30.0  # a start waits this long for a lock another start holds while it reclaims


def try_lock(path: Path) -> int | None:
    """The fd of ``path`` locked exclusively by this process, or None when a live process holds
    it. Close the fd to release it (the kernel does when the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def wait_lock(path: Path, timeout_s: float | None = None) -> int | None:
    """``try_lock`` retried for ``timeout_s`` (default ``LOCK_WAIT_S``: another start may hold
    it while it reclaims)."""
    deadline = time.monotonic() + (LOCK_WAIT_S if timeout_s is None else timeout_s)
    while (fd := try_lock(path)) is None:
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
    return fd


def is_live(path: Path) -> bool:
    """Whether a live process holds the lock file ``path``."""
    if not path.exists():
        return False
    fd = try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


@contextlib.contextmanager
def _held(fds: list[int]) -> Iterator[None]:
    try:
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _worker_dirs(data_dir: Path) -> list[Path]:
    parent = data_dir / "workers"
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.name.isdigit() and p.is_dir())


async def reclaim(settings: Settings, data_dir: Path) -> int:
    """Remove what dead processes of the server of ``data_dir`` left (the caller holds that
    identity's lock): its sandboxes but those a live replica's session lease holds, and mark its
    other ``running`` sessions stopped. Returns how many sandboxes were removed."""
    if settings.runtime != "local" or not (data_dir / "server-id").is_file():
        return 0
    from sqlalchemy import select, update

    from coolcoding.db.engine import Database
    from coolcoding.db.models import CodeSession
    from coolcoding.sandbox.base import SandboxError
    from coolcoding.sandbox.local.runtime import LocalRuntime
    from coolcoding.services.leases import LeaseService, session_lease
    from coolcoding.services.sandboxes import OWNER_KEY

    theirs = settings.model_copy(
        update={
            "data_dir": data_dir,
            "sandbox_pool_size": 0,
            "sandbox_session_pool_size": 0,
            "sandbox_judge_reuse": False,
            "sandbox_spawn_mount_ns": False,
        }
    )
    try:
        runtime = await asyncio.to_thread(LocalRuntime, theirs)
    except SandboxError as exc:
        log.warning("leftovers of %s not reclaimed: %s", data_dir, exc.log_message)
        return 0
    db = Database(settings)  # the database this start uses (the other mode's, on a switch)
    try:
        async with db.session() as s:
            rows = (
                await s.scalars(
                    select(CodeSession).where(
                        CodeSession.sandbox_status.in_(("running", "starting"))
                    )
                )
            ).all()
        theirs_rows = {
            str(r.uuid): r.id
            for r in rows
            if (r.sandbox_state or {}).get(OWNER_KEY) == runtime.instance_id
        }
        live = await LeaseService(db, settings).holders([session_lease(u) for u in theirs_rows])
        # Its own processes are dead (the caller holds its lock): a lease one of them still
        # holds (``<server id>.<random>``, see new_replica_id) has not lapsed yet, nothing more.
        dead = f"{runtime.instance_id}."
        kept = {
            u
            for u in theirs_rows
            if (h := live.get(session_lease(u))) is not None and not h[0].startswith(dead)
        }
        # Their files first: what their shells and programs wrote after the dead server's last
        # sync is taken into the database (as a restart of that mode would), then they stop.
        await _recover_files(settings, theirs, runtime, db, [
            r for r in rows if str(r.uuid) in theirs_rows and str(r.uuid) not in kept
        ])  # fmt: skip
        removed = await runtime.reclaim_dead(kept)
        stopped = [i for u, i in theirs_rows.items() if u not in kept]
        if stopped:
            async with db.session() as s:
                await s.execute(
                    update(CodeSession)
                    .where(
                        CodeSession.id.in_(stopped),
                        CodeSession.sandbox_status.in_(("running", "starting")),
                    )
                    .values(sandbox_status="stopped", sandbox_state=None)
                )
                await s.commit()
    finally:
        await db.dispose()
    if removed or stopped:
        log.info(
            "reclaimed %d sandboxes and %d sessions left by the server of %s",
            removed,
            len(stopped),
            data_dir,
        )
    return removed


async def _recover_files(
    settings: Settings, theirs: Settings, runtime: Any, db: Any, sessions: list[Any]
) -> None:
    """Take the files of ``sessions`` (their sandboxes are the dead identity's) into the
    database: the sync engine's recovery (files the database lacks, or changed since its row,
    are stored; the database's newer ones are kept, the sandbox's copy announced as a conflict
    copy; nothing is deleted), through a sandbox manager of that identity. A session whose files
    cannot be read is logged and left (its image stays on disk)."""
    if not sessions:
        return
    from coolcoding.filesync.sync import SyncEngine
    from coolcoding.services.events import EventBus
    from coolcoding.services.history import HistoryRecorder
    from coolcoding.services.sandboxes import SandboxManager
    from coolcoding.services.sessions import SessionService
    from coolcoding.services.workspace import WorkspaceService

    workspace = WorkspaceService(db, settings)
    workspace.recorder = HistoryRecorder(settings)  # recovered changes keep their history
    events = EventBus()  # nobody follows these sessions yet: this process does not serve
    manager = SandboxManager(theirs, runtime, SessionService(db), events,
                             SyncEngine(workspace, events, theirs))  # fmt: skip
    await manager.recover_files(sessions)


def _run(settings: Settings, dirs: list[Path]) -> None:
    async def go() -> None:
        from coolcoding.db.migrate import upgrade_database

        # ``serve`` reclaims before its app migrates: the session rows must be readable (a
        # database that cannot be read leaves the leftovers alone: which are kept is unknown).
        await upgrade_database(settings)
        for d in dirs:
            try:
                await reclaim(settings, d)
            except Exception:
                log.exception("reclaiming the leftovers of %s failed", d)

    if dirs:
        asyncio.run(go())


def enter_serve(settings: Settings) -> int | None:
    """``coolcoding serve``: hold ``serve.lock`` (None: another live ``serve`` holds it), then
    reclaim the workers' leftovers when no ``--workers`` supervisor is live. Keep the fd open for
    the process's life."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    mine = wait_lock(data_dir / SERVE_LOCK)
    if mine is None:
        return None
    try:
        reclaim_workers(settings, data_dir)
        reclaim_judge_workers(settings, data_dir)
    except BaseException:
        os.close(mine)
        raise
    return mine


def reclaim_workers(settings: Settings, data_dir: Path) -> None:
    """Reclaim every dead worker's dir, holding the supervisor's lock and the worker's own."""
    dirs = _worker_dirs(data_dir)
    if not dirs:
        return
    sup = try_lock(data_dir / "workers" / SUPERVISOR_LOCK)
    if sup is None:
        return  # a live ``serve --workers``: its workers reclaim their own
    held = [sup]
    with _held(held):
        dead = []
        for d in dirs:
            fd = try_lock(d / WORKER_LOCK)
            if fd is not None:  # else a worker still stopping after its supervisor died
                held.append(fd)
                dead.append(d)
        _run(settings, dead)


def reclaim_judge_workers(settings: Settings, data_dir: Path) -> None:
    """Reclaim the dirs of dead judge workers (``coolcoding worker``) of ``data_dir``."""
    parent = data_dir / JUDGE_WORKERS
    if not parent.is_dir():
        return
    held: list[int] = []
    with _held(held):
        dead = []
        for d in sorted(p for p in parent.iterdir() if p.name.isdigit() and p.is_dir()):
            fd = try_lock(d / WORKER_LOCK)
            if fd is not None:
                held.append(fd)
                dead.append(d)
        _run(settings, dead)


def enter_judge_worker(settings: Settings) -> tuple[Settings, int]:
    """``coolcoding worker``: its own identity, ``<data_dir>/judge-workers/<k>`` for the first
    k whose lock it takes (held for its life: the fd), as ``settings``."""
    parent = settings.data_dir.resolve() / JUDGE_WORKERS
    parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(parent, 0o711)  # noqa: S103 (sandbox uids pass through to the workspaces)
    k = 0
    while (fd := try_lock(parent / str(k) / WORKER_LOCK)) is None:
        k += 1
    os.chmod(parent / str(k), 0o711)  # noqa: S103
    own = settings.model_copy(
        update={"data_dir": parent / str(k), "database_url": settings.effective_database_url}
    )
    return own, fd


def reclaim_serve(settings: Settings, data_dir: Path) -> None:
    """``serve --workers`` (its supervisor, holding its own lock): reclaim the leftovers of a
    dead ``coolcoding serve`` of ``data_dir``; a live one's are not touched."""
    fd = try_lock(data_dir / SERVE_LOCK)
    if fd is None:
        return
    with _held([fd]):
        _run(settings, [data_dir])


def enter_worker(data_dir: Path) -> int | None:
    """Worker k of ``serve --workers`` (``data_dir``: its own dir): hold its ``worker.lock``
    for its life (None: a previous worker k is still alive)."""
    return wait_lock(data_dir / WORKER_LOCK)
