"""``coolcoding serve --workers N``: N worker processes serving one port.

One ``coolcoding serve`` process is one event loop under one GIL: about 2.35 ms of CPU per save
or read request, so it saturates below 500 requests/s whatever the number of cores. With
``--workers N`` the parent (the supervisor) applies the migrations once, binds the listening
socket once and starts N children that accept on it (the kernel spreads the connections).

Each worker is exactly a replica of "Running N replicas" (README): one PostgreSQL database, one
Redis (the cross-process event bus), and a data dir of its own, ``<data_dir>/workers/<k>``, so
its server id, cgroup subtree, sandbox state and start-up orphan cleanup never touch another
worker's. Sandboxes outlive a worker and are reached by every worker through their agent; the
session leases decide which worker does a session's once-per-session work. A worker that dies is
restarted on the same dir k and takes its sandboxes back as a restarted replica does.

The parent restarts a dead worker (with a back-off), forwards SIGTERM/SIGINT to the workers and
exits when they have. Each worker asks the kernel for SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``): a SIGKILLed supervisor leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coolcoding.settings import Settings

log = logging.getLogger("coolcoding.workers")

WORKER_HEADER = b"x-coolcoding-worker"
# A worker that dies is restarted after this back-off, doubled for each death that follows a run
# shorter than RESTART_RESET_S, up to RESTART_BACKOFF_MAX_S.
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
RESTART_RESET_S = 30.0
_PR_SET_PDEATHSIG = 1


def workers_problem(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` worker processes cannot run with ``settings`` (None: they can)."""
    if workers < 1:
        return f"--workers must be at least 1 (got {workers})"
    if workers == 1:
        return None
    missing = []
    if not settings.effective_database_url.startswith("postgresql"):
        missing.append(
            "a PostgreSQL database (COOLCODING_DATABASE_URL=postgresql+asyncpg://...; the "
            "embedded SQLite database is single-process)"
        )
    if not settings.redis_url:
        missing.append(
            "Redis as the cross-process event bus (COOLCODING_REDIS_URL=redis://...; the "
            "in-process bus reaches one process only)"
        )
    if not missing:
        return None
    return f"--workers {workers}: each worker is a replica and needs " + " and ".join(missing)


def worker_data_dir(data_dir: Path, index: int) -> Path:
    """Worker ``index``'s own data dir (the same one when it is restarted)."""
    return data_dir.resolve() / "workers" / str(index)


def bind_listener(host: str, port: int, backlog: int) -> socket.socket:
    """The listening socket all workers accept on (bound once, by the parent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")


class WorkerHeader:
    """ASGI wrapper: every HTTP response names the worker that served it
    (``X-Coolcoding-Worker: <k>``, only with ``--workers`` > 1)."""

    def __init__(self, app: Any, index: int) -> None:
        self.app = app
        self.value = str(index).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (WORKER_HEADER, self.value)],
                }
            await send(message)

        await self.app(scope, receive, send_with_header)


def migrate_once(settings: Settings) -> None:
    from coolcoding.db.migrate import upgrade_database

    asyncio.run(upgrade_database(settings))


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = RESTART_BACKOFF_S
    restart_at: float | None = None
    returncode: int | None = None


@dataclass
class Supervisor:
    """Starts ``workers`` children with ``spawn(k)`` and keeps them running until a signal."""

    workers: int
    spawn: Callable[[int], subprocess.Popen[bytes]]
    poll_s: float = 0.1
    _signals: list[int] = field(default_factory=list)

    def _on_signal(self, sig: int, _frame: object) -> None:
        self._signals.append(sig)

    def _start(self, w: _Worker) -> None:
        w.proc = self.spawn(w.index)
        w.started_at = time.monotonic()
        w.restart_at = None
        log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    def run(self) -> int:
        """Until SIGTERM/SIGINT: forwarded to the workers; returns 0 once all of them have
        exited cleanly (exit code 0 or the forwarded signal), else 1."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        pool = [_Worker(k) for k in range(self.workers)]
        stopping = False
        try:
            for w in pool:
                self._start(w)
            while True:
                if self._signals:
                    sig = self._signals.pop(0)
                    # The first signal: a graceful stop (SIGTERM, as to a replica); another
                    # one: SIGINT, which uvicorn takes as "stop now" on a second signal.
                    fwd = signal.SIGINT if stopping else signal.SIGTERM
                    stopping = True
                    log.info("signal %d: stopping %d workers", sig, len(pool))
                    for w in pool:
                        if w.proc is not None and w.proc.poll() is None:
                            with contextlib.suppress(ProcessLookupError):
                                w.proc.send_signal(fwd)
                now = time.monotonic()
                for w in pool:
                    if w.proc is not None and (rc := w.proc.poll()) is not None:
                        pid, w.proc = w.proc.pid, None
                        if stopping:  # how the stop went decides the exit code
                            w.returncode = rc
                            log.info("worker %d (pid %d) exited (%d)", w.index, pid, rc)
                            continue
                        if now - w.started_at >= RESTART_RESET_S:
                            w.backoff_s = RESTART_BACKOFF_S
                        w.restart_at = now + w.backoff_s
                        log.warning(
                            "worker %d (pid %d) died (exit %d); restarting in %.1f s",
                            w.index,
                            pid,
                            rc,
                            w.backoff_s,
                        )
                        w.backoff_s = min(w.backoff_s * 2, RESTART_BACKOFF_MAX_S)
                    elif (
                        not stopping
                        and w.proc is None
                        and w.restart_at is not None
                        and now >= w.restart_at
                    ):
                        self._start(w)
                if stopping and all(w.proc is None for w in pool):
                    break
                time.sleep(self.poll_s)
        finally:
            for w in pool:  # only on an exception: never leave a worker behind
                if w.proc is not None and w.proc.poll() is None:
                    w.proc.kill()
                    w.proc.wait()
            for s, h in old.items():
                signal.signal(s, h)
        # None: a worker waiting for its restart when the stop came.
        clean = {None, 0, -signal.SIGTERM, -signal.SIGINT}
        return 0 if all(w.returncode in clean for w in pool) else 1


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    """The supervisor of ``coolcoding serve --workers N`` (N > 1, settings checked)."""
    from coolcoding.httpserver import listen_backlog

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data_dir = settings.data_dir.resolve()
    parent = data_dir / "workers"
    parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(parent, 0o711)  # noqa: S103 (sandbox uids pass through to the workspaces)
    # Two supervisors on one data dir would run two workers k on one dir k (one server id: each
    # one's orphan cleanup would kill the other's sandboxes).
    lock = os.open(parent / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        log.error(
            "another `coolcoding serve --workers` runs on %s: give each its own data dir", data_dir
        )
        return 2
    migrate_once(settings)
    from coolcoding.modeswitch import reclaim_judge_workers, reclaim_serve

    # a dead ``coolcoding serve``'s and judge workers' leftovers (modeswitch.py)
    reclaim_serve(settings, data_dir)
    reclaim_judge_workers(settings, data_dir)
    sock = bind_listener(host, port, listen_backlog())
    me = os.getpid()

    def spawn(index: int) -> subprocess.Popen[bytes]:
        wdir = worker_data_dir(data_dir, index)
        wdir.mkdir(mode=0o711, exist_ok=True)
        env = {
            # libuv (uvloop) accepts one connection per wake-up and yields, not every pending
            # one: connections opened at once spread over the workers (50 of them measured
            # 25/25-34/16 instead of up to 49/1).
            "UV_TCP_SINGLE_ACCEPT": "1",
            **os.environ,
            "COOLCODING_DATA_DIR": str(wdir),
            "COOLCODING_WORKERS": "1",
        }
        argv = [sys.executable, "-m", "coolcoding", "serve-worker"]
        argv += ["--fd", str(sock.fileno()), "--index", str(index), "--parent-pid", str(me)]
        return subprocess.Popen(argv, env=env, pass_fds=(sock.fileno(),))

    try:
        return Supervisor(workers, spawn).run()
    finally:
        sock.close()
        os.close(lock)


def run_worker(settings: Settings, fd: int, index: int, parent_pid: int) -> None:
    """One worker: the app without migrations, on the inherited listening socket."""

    import uvicorn

    from coolcoding.app import create_app
    from coolcoding.httpserver import raise_open_file_limit, settle_gc, uvicorn_options

    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        raise SystemExit(1)
    from coolcoding.modeswitch import enter_worker

    # Held while this worker lives: a ``coolcoding serve`` started after its supervisor died
    # reclaims this dir only once the worker is gone too.
    if enter_worker(settings.data_dir.resolve()) is None:
        log.error("worker %d: a previous worker %d still runs on its data dir", index, index)
        raise SystemExit(1)
    sock = socket.socket(fileno=fd)
    _before, nofile = raise_open_file_limit()
    application = WorkerHeader(create_app(settings, migrate=False), index)
    settle_gc(settings)  # as in ``serve``
    config = uvicorn.Config(
        application,
        log_level="info",
        access_log=settings.access_log,
        **uvicorn_options(settings, open_file_limit=nofile),
    )
    uvicorn.Server(config).run(sockets=[sock])
