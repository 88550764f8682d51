"""The session sandboxes' lifecycle: lazy start, status in the DB and on the event bus, idle stop.

A sandbox starts when its session is opened (a terminal or events connection, a run, or
``POST .../sandbox/start``): the runtime starts it, the sync engine materializes the DB into it
and starts watching, and only then is it ``running``. It stops after ``sandbox_idle_timeout_s``
with no attached client (``hold``) and no activity (``touch``), on request, when its session is
deleted, and at server shutdown unless ``sandbox_keep_on_shutdown`` (then it is synced and left
running for the next process); a stop kills its processes first, then syncs the last changes
to the DB, then stops the runtime's sandbox. At start-up, sandboxes a previous process of this
server left ``running`` whose agent still answers are found again (files newer in the sandbox
go to the DB) and keep running; the others are recovered (sandbox files -> DB) and marked
``stopped``; leftovers without either are removed. Sessions whose sandbox another server runs
(its id in ``sandbox_state``) are left alone.

Across replicas (``services/leases.py``): the replica that starts a sandbox holds the session's
lease while it runs it and does the once-per-session work (sync to the DB, idle stop); every other
replica serves it through its agent, and takes it over when the holder dies (``sandbox_replicas``).
A replica whose lease was taken over lets its copy go without a final sync and without touching
the DB status (the new holder owns both now). Start-up recovery skips sessions whose lease is
live, and keeps every sandbox of this server another replica holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid as uuid_mod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from coolcoding.db.models import CodeSession, User
from coolcoding.errors import Conflict, DomainError, Unavailable
from coolcoding.sandbox.base import DiskUsage, Runtime, Sandbox, SandboxError, SandboxSpec
from coolcoding.sandbox.host_limits import host_limit_message
from coolcoding.sandbox.packages import SHARED_PIP, package_env, shared_binds
from coolcoding.sandbox.pipcache import SHARED_PIP_USER, user_key
from coolcoding.schemas.ws import SandboxStatusEvent
from coolcoding.services.events import EventBus
from coolcoding.services.leases import LeaseService, session_lease
from coolcoding.services.sandbox_replicas import ReplicaSharing
from coolcoding.services.sessions import SessionService, parse_uuid, ref_of
from coolcoding.settings import Settings
from coolcoding.terminal.shell_integration import SANDBOX_SCRIPT_PATH, script_path

if TYPE_CHECKING:
    from coolcoding.filesync.sync import SyncEngine

log = logging.getLogger(__name__)

StopHook = Callable[[str], Awaitable[None]]
# Called once a session's sandbox runs in this process (started or found again):
# (session uuid, session id, user id, sandbox).
StartHook = Callable[[str, int, int, Sandbox], Awaitable[None]]
# In ``sessions.sandbox_state``: the id of the server whose runtime runs the sandbox.
OWNER_KEY = "server"


@dataclass
class ActiveSandbox:
    sandbox: Sandbox
    session_id: int
    user_id: int = 0
    holds: int = 0
    last_activity: float = field(default_factory=time.monotonic)


class SandboxManager(ReplicaSharing):
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        sessions: SessionService,
        events: EventBus,
        sync: SyncEngine | None = None,
        leases: LeaseService | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.sessions = sessions
        self.events = events
        self.sync = sync
        self.leases = leases
        self._active: dict[str, ActiveSandbox] = {}
        self._holds: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._starting: dict[str, int] = {}  # session uuid -> user id, while it starts
        # Called with the session uuid before a sandbox stops (the terminal manager closes its
        # shells there, so that nothing writes files after the final sync).
        self.before_stop: list[StopHook] = []
        self.after_start: list[StartHook] = []
        self._agent_watches: dict[str, asyncio.Task[None]] = {}
        super().__init__()

    def _lock(self, session_uuid: str) -> asyncio.Lock:
        return self._locks.setdefault(session_uuid, asyncio.Lock())

    def is_running(self, session_uuid: str) -> bool:
        return session_uuid in self._active

    def running_for(self, user_id: int) -> int:
        """The user's sandboxes running or starting on this server."""
        return sum(a.user_id == user_id for a in self._active.values()) + sum(
            owner == user_id for owner in self._starting.values()
        )

    def _check_caps(self, user_id: int) -> None:
        """Refuse a start over the per-user or the per-server cap (a clear error naming the
        setting, before any host-wide resource such as an inotify instance is taken)."""
        s = self.settings
        per_user = s.max_running_sandboxes_per_user
        if per_user > 0 and self.running_for(user_id) >= per_user:
            raise Conflict(
                f"you have {per_user} sandboxes running, the most allowed "
                "(COOLCODING_MAX_RUNNING_SANDBOXES_PER_USER); stop one first",
                code="too_many_running_sandboxes",
                limit=per_user,
                setting="max_running_sandboxes_per_user",
            )
        total = s.sandbox_max_running
        if total > 0 and len(self._active) + len(self._starting) >= total:
            raise Unavailable(
                f"this server runs {total} sandboxes, its most (COOLCODING_SANDBOX_MAX_RUNNING); "
                "try again later",
                code="server_sandbox_limit",
                limit=total,
                setting="sandbox_max_running",
                retry_after=30,
            )

    def get(self, session_uuid: str) -> Sandbox | None:
        a = self._active.get(session_uuid)
        return a.sandbox if a is not None else None

    # --- server lifecycle --------------------------------------------------------------------

    async def startup(self) -> None:
        """Find this server's sandboxes again: those whose agent answers keep running (their
        shells outlived the previous process); the others are recovered (files) and stopped;
        leftovers without a live agent or a DB row are removed."""
        async with self.sessions.db.session() as s:
            stale = [
                sess
                for sess in (
                    await s.scalars(
                        select(CodeSession).where(
                            CodeSession.sandbox_status.in_(("running", "starting"))
                        )
                    )
                ).all()
                if self._owned(sess)
            ]
        # Only sessions whose lease lapsed, or was held by a previous process of this server
        # (same data dir: it is dead, two live processes never share one), are ours to handle.
        stale = [sess for sess in stale if await self._take_for_recovery(str(sess.uuid))]
        alive = [
            sess
            for sess in stale
            if sess.sandbox_status == "running"
            and await self.runtime.reachable(str(sess.uuid), sess.sandbox_state)
        ]
        # Sandboxes of this server that another live replica holds (taken over from a dead
        # process of it) keep running: only what nobody holds is a leftover.
        kept = {str(sess.uuid) for sess in alive} | await self._held_elsewhere()
        removed = await self.runtime.cleanup_orphans(keep=kept)
        if removed:
            log.info("removed %d sandbox leftovers of a previous server process", removed)
        await self.remove_deleted_workspaces()
        for sess in alive:
            uuid = str(sess.uuid)
            try:
                async with self._lock(uuid):
                    await self._take_lease(uuid)  # held already: registers the lost-lease hook
                    await self._start(sess, uuid)
            except Exception:
                log.exception("sandbox %s: reattaching after a restart failed", uuid)
        lost = [sess for sess in stale if str(sess.uuid) not in self._active]
        await self._recover_all(lost, release=True)
        if lost:
            async with self.sessions.db.session() as s:
                await s.execute(
                    update(CodeSession)
                    .where(
                        CodeSession.id.in_([sess.id for sess in lost]),
                        CodeSession.sandbox_status.in_(("running", "starting")),
                    )
                    .values(sandbox_status="stopped", sandbox_state=None)
                )
                await s.commit()
        self._reaper = asyncio.create_task(self._reap_idle())
        self._start_sweeper()
        # New sessions' sandboxes, pre-started (sandbox/local/session_pool.py); the uuid is
        # the runtime's, as each pooled sandbox is started under the uuid it will keep.
        self.runtime.keep_session_pool(self._spec_for("pool", network=False))

    # --- the session pool: new sessions bind a pre-started sandbox -----------------------------

    def reserve_new(self, network: bool) -> uuid_mod.UUID | None:
        """A uuid for a new session whose sandbox is already running (reserved for it), or
        ``None``: the session gets the DB's uuid4 and a cold start."""
        try:
            name = self.runtime.reserve_session_uuid(network)
        except Exception:
            log.warning("session pool: reserving a sandbox failed", exc_info=True)
            return None
        return uuid_mod.UUID(name) if name is not None else None

    async def unreserve(self, reserved: uuid_mod.UUID | None, *, unused: bool = False) -> None:
        """Drop a reservation; ``unused``: no session row was ever created with it."""
        if reserved is not None:
            with contextlib.suppress(Exception):
                await self.runtime.unreserve_session_uuid(str(reserved), unused=unused)

    async def start_reserved(self, sess: CodeSession) -> None:
        """Bind a new session to the sandbox reserved for it (``reserve_new``), at once: the
        creating replica takes its lease and marks it running, so any replica finds it. A user
        at a cap, or a failed start, leaves the session stopped, as a lazy start would."""
        uuid = str(sess.uuid)
        try:
            self._check_caps(sess.user_id)
        except DomainError:
            await self.unreserve(sess.uuid)
            return
        try:
            await self.ensure_started(sess)
        except Exception:
            log.warning("session %s: binding its pooled sandbox failed", uuid, exc_info=True)
        finally:
            await self.unreserve(sess.uuid)  # still reserved: not started here (no-op otherwise)

    async def remove_deleted_workspaces(self) -> int:
        """Delete the workspace storage this runtime keeps for sessions that no longer exist
        (deleted through another replica while this one kept a stopped sandbox's storage, or
        while this process was down); returns how many."""
        stored = await self.runtime.stored_workspaces()
        if not stored:
            return 0
        known: set[str] = set()
        uuids = [parse_uuid(n) for n in stored]
        async with self.sessions.db.session() as s:
            for i in range(0, len(uuids), 500):
                rows = await s.scalars(
                    select(CodeSession.uuid).where(CodeSession.uuid.in_(uuids[i : i + 500]))
                )
                known.update(str(u) for u in rows.all())
        gone = [n for n in stored if n not in known and n not in self._active]
        for name in gone:
            try:
                await self.runtime.delete_workspace(name)
            except Exception:
                log.exception("deleting the storage of deleted session %s failed", name)
        if gone:
            log.info("deleted the storage of %d deleted sessions", len(gone))
        return len(gone)

    def _owned(self, sess: CodeSession) -> bool:
        """Whether this server started the session's sandbox (or no server is recorded):
        another server's running sessions (a shared database) are not ours to recover."""
        owner = (sess.sandbox_state or {}).get(OWNER_KEY)
        return owner is None or owner == self.runtime.instance_id

    async def recover_files(self, sessions: list[CodeSession]) -> None:
        """``_recover`` each of ``sessions`` (running sandboxes of a dead process of this
        server's identity that nobody will reattach: modeswitch.py)."""
        await self._recover_all(sessions)

    async def _recover_all(self, sessions: list[CodeSession], *, release: bool = False) -> None:
        """``_recover`` ``sessions``, ``sandbox_recovery_concurrency`` at once (each one is
        mostly waiting: its sandbox's start, its files' reads and writes); ``release``: give
        each one's session lease back when it is done."""
        gate = asyncio.Semaphore(self.settings.sandbox_recovery_concurrency)

        async def one(sess: CodeSession) -> None:
            async with gate:
                try:
                    await self._recover(sess)
                finally:
                    if release and self.leases is not None:
                        await self.leases.release(session_lease(str(sess.uuid)))

        await asyncio.gather(*(one(sess) for sess in sessions))

    async def _recover(self, sess: CodeSession) -> None:
        """The previous server stopped without a final sync: take the sandbox's files as newer."""
        uuid = str(sess.uuid)
        if self.sync is None:
            return
        try:
            sandbox = await self.runtime.start(await self._spec(sess), sess.sandbox_state)
            try:
                await self.sync.recover(ref_of(sess), sandbox)
            finally:
                await self.runtime.stop(uuid)
            log.info("recovered the files of sandbox %s after an unclean shutdown", uuid)
        except Exception:
            log.exception("recovering sandbox %s failed; its DB files are kept", uuid)

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._stop_sharing()
        for uuid in list(self._active):
            try:
                if self.settings.sandbox_keep_on_shutdown and await self._release(uuid):
                    continue
                await self.stop(uuid, reason="server shutdown")
            except Exception:
                log.exception("stopping sandbox %s at shutdown failed", uuid)
        await self.runtime.shutdown()

    async def _release(self, uuid: str) -> bool:
        """Leave the sandbox running for the next server process (its row stays ``running``):
        a final sync, then the runtime forgets it."""
        async with self._lock(uuid):
            if uuid not in self._active:
                return True
            self._unwatch_agent(uuid)
            if self.sync is not None:
                await self.sync.detach(uuid)
            if not await self.runtime.release(uuid):
                return False
            del self._active[uuid]
            log.info("sandbox %s left running for the next server process", uuid)
            return True

    # --- one session -------------------------------------------------------------------------

    async def _spec(self, sess: CodeSession) -> SandboxSpec:
        user = ""
        if self.settings.package_cache_dir and self.settings.package_cache_pip_user_quota_bytes > 0:
            user = await self._package_user(sess.user_id)
        return self._spec_for(str(sess.uuid), bool(sess.network_enabled), user)

    async def _package_user(self, user_id: int) -> str:
        """The owner's wheelhouse name (pipcache.user_key: id and creation time, so an id that
        SQLite reuses after a deletion does not inherit the deleted account's wheels)."""
        async with self.sessions.db.session() as s:
            created = await s.scalar(select(User.created_at).where(User.id == user_id))
        return "" if created is None else user_key(user_id, created)

    def _spec_for(self, uuid: str, network: bool, user: str = "") -> SandboxSpec:
        s = self.settings
        if s.package_cache_pip_user_quota_bytes <= 0:
            user = ""  # no per-user pip wheelhouse
        shared = shared_binds(s.package_cache_dir, user)
        return SandboxSpec(
            session_uuid=uuid,
            network=network,
            memory_mb=s.sandbox_memory_mb,
            pids=s.sandbox_pids,
            cpus=s.sandbox_cpus,
            disk_bytes=s.max_workspace_bytes,
            # Terminal shell integration, sourced by login shells from /etc/profile.d; the
            # shared package cache (sandbox/packages.py).
            extra_ro_binds={script_path(): SANDBOX_SCRIPT_PATH, **shared},
            env=package_env(SHARED_PIP in shared.values(), SHARED_PIP_USER in shared.values()),
            package_user=user,
        )

    async def _set_status(
        self, sess_id: int, uuid: str, status: str, message: str | None = None
    ) -> None:
        state: dict[str, object] | None = None
        if status == "running":
            # The runtime's state names another server when it took the sandbox over from it.
            state = {OWNER_KEY: self.runtime.instance_id, **self.runtime.get_state(uuid)}
        elif status == "starting":
            state = {OWNER_KEY: self.runtime.instance_id}
        await self.sessions.set_sandbox_status(sess_id, status, message, state)
        event = SandboxStatusEvent(status=status, message=message or None)
        await self.events.publish(uuid, event.as_dict())

    async def ensure_started(self, sess: CodeSession) -> Sandbox:
        """The session's running sandbox, started (and materialized) if needed; another
        replica's running sandbox is used as it is (connected through its agent)."""
        uuid = str(sess.uuid)
        active = self._active.get(uuid)
        if active is not None:
            active.last_activity = time.monotonic()
            return active.sandbox
        remote = self._remote.get(uuid)
        if remote is not None:
            return remote.sandbox
        async with self._lock(uuid):
            active = self._active.get(uuid)
            if active is not None:
                return active.sandbox
            remote = self._remote.get(uuid)
            if remote is not None:
                return remote.sandbox
            if not await self._take_lease(uuid):
                return await self._connect_remote(sess)
            try:
                self._check_caps(sess.user_id)
            except DomainError as exc:  # told to the IDE too (the events socket starts it)
                await self._release_lease(uuid)
                await self._set_status(sess.id, uuid, "error", exc.message)
                raise
            self._starting[uuid] = sess.user_id  # counted from here on (no await since)
            try:
                return await self._start(sess, uuid)
            except BaseException:
                await self._release_lease(uuid)
                raise
            finally:
                self._starting.pop(uuid, None)

    async def _fail_on_host_limit(
        self, sess: CodeSession, uuid: str, exc: Exception, log_message: str | None
    ) -> None:
        """When ``exc`` comes from a host limit, mark the sandbox ``error`` naming the limit and
        raise ``host_limit`` (logged as ``log_message``, else the limit); else return."""
        limit = host_limit_message(exc)
        if limit is not None:
            message = f"The sandbox could not start: {limit}; ask the administrator."
            await self._set_status(sess.id, uuid, "error", message)
            raise SandboxError("host_limit", message, log_message or limit) from exc

    async def _start(self, sess: CodeSession, uuid: str) -> Sandbox:
        """Start, materialize and watch (``ensure_started`` holds the lock and the caps)."""
        if not (sess.sandbox_status == "running" and (sess.sandbox_state or {}).get("agent")):
            # (a running one is probably adopted: its row keeps naming its agent meanwhile)
            await self._set_status(sess.id, uuid, "starting")
        timeout = self.settings.sandbox_start_timeout_s
        try:
            try:
                sandbox = await asyncio.wait_for(
                    self.runtime.start(await self._spec(sess), sess.sandbox_state), timeout
                )
            except TimeoutError as exc:
                raise SandboxError(
                    "start_timeout",
                    "The sandbox did not start in time; try again.",
                    f"sandbox {uuid} did not start within {timeout}s: check that bubblewrap "
                    "works and the cgroup hierarchy is writable (see the server log), or "
                    "raise COOLCODING_SANDBOX_START_TIMEOUT_S",
                ) from exc
            if self.sync is not None:
                # An adopted sandbox ran without a server: its files may be newer.
                await self.sync.attach(ref_of(sess), sandbox, recover=sandbox.adopted)
        except SandboxError as exc:
            log.warning("sandbox %s failed to start: %s", uuid, exc.log_message)
            with contextlib.suppress(Exception):
                await self.runtime.stop(uuid)
            await self._fail_on_host_limit(sess, uuid, exc, exc.log_message)
            await self._set_status(sess.id, uuid, "error", exc.user_message)
            raise
        except Exception as exc:
            log.exception("sandbox %s failed to start", uuid)
            if self.sync is not None:
                with contextlib.suppress(Exception):
                    await self.sync.detach(uuid, final_sync=False)
            with contextlib.suppress(Exception):
                await self.runtime.stop(uuid)
            await self._fail_on_host_limit(sess, uuid, exc, None)
            await self._set_status(sess.id, uuid, "error", "The sandbox failed to start.")
            raise SandboxError("start_failed", "The sandbox failed to start.") from exc
        self._active[uuid] = ActiveSandbox(sandbox, sess.id, sess.user_id)
        await self._set_status(sess.id, uuid, "running")
        for hook in self.after_start:
            try:
                await hook(uuid, sess.id, sess.user_id, sandbox)
            except Exception:
                log.exception("an after-start hook of sandbox %s failed", uuid)
        self._agent_watches[uuid] = asyncio.create_task(self._watch_agent(uuid, sandbox))
        return sandbox

    async def _watch_agent(self, uuid: str, sandbox: Sandbox) -> None:
        """An agent that dies takes the sandbox's terminals with it: say so (status ``error``
        with the reason) and stop what is left."""
        message = await sandbox.wait_ended()
        active = self._active.get(uuid)
        if active is None or active.sandbox is not sandbox:
            return
        log.warning("sandbox %s: %s", uuid, message)
        self._agent_watches.pop(uuid, None)
        await self.stop(uuid, reason=message, status="error")

    def _unwatch_agent(self, uuid: str) -> None:
        task = self._agent_watches.pop(uuid, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def stop(
        self,
        session_uuid: str,
        *,
        reason: str = "stopped",
        status: str = "stopped",
        lease_lost: bool = False,
    ) -> None:
        """Stop the session's sandbox, keeping every file (idempotent). ``lease_lost``: another
        replica holds the session now, so neither the last sync nor the status is ours to write."""
        async with self._lock(session_uuid):
            active = self._active.pop(session_uuid, None)
            if active is None:
                return
            self._unwatch_agent(session_uuid)
            log.info("stopping sandbox %s (%s)", session_uuid, reason)
            for hook in self.before_stop:
                try:
                    await hook(session_uuid)
                except Exception:
                    log.exception("a before-stop hook of sandbox %s failed", session_uuid)
            try:
                if self.sync is not None:
                    await self.sync.detach(session_uuid, final_sync=not lease_lost)
            finally:
                # A lost lease: the new holder may have adopted this very sandbox (its agent
                # still answered), so it is let go of, not killed, where the runtime can.
                if not (lease_lost and await self.runtime.release(session_uuid)):
                    await self.runtime.stop(session_uuid)
                if not lease_lost:
                    await self._set_status(active.session_id, session_uuid, status, reason)
                    await self._release_lease(session_uuid)

    async def delete_session_files(self, sess: CodeSession) -> None:
        """Session ``before_delete`` hook: stop the sandbox, remove its workspace directory."""
        uuid = str(sess.uuid)
        await self.stop_anywhere(sess, reason="session deleted", delete=True)
        await self.runtime.delete_workspace(uuid)
        self._locks.pop(uuid, None)

    async def disk_usage(self, session_uuid: str) -> DiskUsage | None:
        """The running sandbox's workspace disk usage; ``None`` when it is not running here."""
        active = self._active.get(session_uuid)
        return await active.sandbox.disk_usage() if active is not None else None

    # --- activity ----------------------------------------------------------------------------

    def touch(self, session_uuid: str) -> None:
        active = self._active.get(session_uuid)
        if active is not None:
            active.last_activity = time.monotonic()

    @contextlib.asynccontextmanager
    async def hold(self, session_uuid: str) -> AsyncIterator[None]:
        """While held (an attached terminal or events client), the sandbox is never idle: held
        on a replica that is not the holder, a ``client_lease`` tells the holder so."""
        self._holds[session_uuid] = self._holds.get(session_uuid, 0) + 1
        if session_uuid not in self._active:
            await self._client_lease(session_uuid, True)
        try:
            yield
        finally:
            n = self._holds.get(session_uuid, 1) - 1
            if n > 0:
                self._holds[session_uuid] = n
            else:
                self._holds.pop(session_uuid, None)
                await self._client_lease(session_uuid, False)
            self.touch(session_uuid)

    def idle_for(self, session_uuid: str) -> float | None:
        """Seconds since the last activity when nothing holds the sandbox; ``None`` if held."""
        active = self._active.get(session_uuid)
        if active is None or self._holds.get(session_uuid):
            return None
        return time.monotonic() - active.last_activity

    async def _reap_idle(self) -> None:
        timeout = self.settings.sandbox_idle_timeout_s
        interval = max(0.5, min(30.0, timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for uuid in list(self._active):
                idle = self.idle_for(uuid)
                if idle is not None and idle > timeout:
                    if await self._used_elsewhere(uuid):
                        self.touch(uuid)  # the timeout counts from its last client anywhere
                        continue
                    try:
                        await self.stop(uuid, reason=f"idle for {int(idle)} s")
                    except Exception:
                        log.exception("stopping idle sandbox %s failed", uuid)
