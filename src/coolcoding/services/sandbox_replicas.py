"""Sandboxes across replicas: the part of ``SandboxManager`` that serves sessions other replicas
hold, and takes them over when their holder dies.

Every replica serves every session. A replica that does not hold a session's lease connects to
the running sandbox's agent (``Runtime.connect``, the address in ``sandbox_state``) without
owning it, so terminals and runs work through every replica. While clients use a sandbox
through a replica that is not its holder, that replica holds a ``client:<session>:<replica>``
lease, and the holder's idle stop waits for those to lapse (a lease, not a count kept by the
agent: it lapses by itself when its replica dies, it needs no agent protocol change and works
the same for every runtime). When the holder dies, its lease lapses and any replica (the next
request, or the sweep every ``lease_renew_interval_s``) takes the session over: a sandbox whose
agent still answers is adopted as it runs (same shells; the DB is reconciled by content hash),
one whose agent is gone is marked ``stopped``. A stop asked of a non-holder is sent to the
holder over the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from coolcoding.db.models import CodeSession
from coolcoding.errors import Unavailable
from coolcoding.sandbox.base import Runtime, Sandbox, SandboxError
from coolcoding.services.events import EventBus
from coolcoding.services.leases import LeaseService, client_lease, session_lease
from coolcoding.services.sessions import SessionService
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

StopHook = Callable[[str], Awaitable[None]]
# A replica message (event bus, never to browsers): "the holder, please stop this sandbox".
STOP_REQUEST = "sandbox_stop"


@dataclass
class RemoteSandbox:
    """A sandbox another replica holds, reached here through its agent only."""

    sandbox: Sandbox
    agent: object  # its ``sandbox_state["agent"]``: a change means a new agent


class ReplicaSharing:
    """Base of ``SandboxManager``: its cross-replica half (state and the hooks it needs)."""

    settings: Settings
    runtime: Runtime
    sessions: SessionService
    events: EventBus
    leases: LeaseService | None
    _active: dict[str, Any]
    _starting: dict[str, int]

    def __init__(self) -> None:
        self._remote: dict[str, RemoteSandbox] = {}
        self._clients: set[str] = set()  # sessions whose client lease this replica holds
        self._sweeper: asyncio.Task[None] | None = None
        # Called with the session uuid when a remote handle is dropped (the terminal manager
        # closes its control connection; attached clients end with the agent's connection).
        self.on_remote_dropped: list[StopHook] = []
        self.events.on_replica_message(self._on_replica_message)

    # --- what the manager provides -------------------------------------------------------------

    def _lock(self, session_uuid: str) -> asyncio.Lock:
        raise NotImplementedError

    def _owned(self, sess: CodeSession) -> bool:
        raise NotImplementedError

    def _check_caps(self, user_id: int) -> None:
        raise NotImplementedError

    async def _start(self, sess: CodeSession, uuid: str) -> Sandbox:
        raise NotImplementedError

    async def _set_status(
        self, sess_id: int, uuid: str, status: str, message: str | None = None
    ) -> None:
        raise NotImplementedError

    async def stop(
        self, session_uuid: str, *, reason: str = "stopped", lease_lost: bool = False
    ) -> None:
        raise NotImplementedError

    async def ensure_started(self, sess: CodeSession) -> Sandbox:
        raise NotImplementedError

    # --- the session's lease ---------------------------------------------------------------------

    async def _take_for_recovery(self, session_uuid: str) -> bool:
        """Whether this replica may recover the session: its lease lapsed and is now ours (a
        live replica of this server still runs it otherwise)."""
        if self.leases is None:
            return True
        return await self.leases.acquire(session_lease(session_uuid), from_predecessor=True)

    async def _take_lease(self, session_uuid: str) -> bool:
        """Hold the session's lease before starting its sandbox; False while another replica
        holds it (its lease is live)."""
        if self.leases is None:
            return True
        return await self.leases.acquire(session_lease(session_uuid), self._lease_lost)

    async def _lease_lost(self, name: str) -> None:
        """Another replica took the session over: stop our copy, leave the DB to the new holder."""
        await self.stop(name.removeprefix("session:"), reason="lease lost", lease_lost=True)

    async def _release_lease(self, session_uuid: str) -> None:
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(session_lease(session_uuid))

    # --- serving, holding, stopping sessions other replicas hold -------------------------------

    def _start_sweeper(self) -> None:
        if self.leases is not None:
            self._sweeper = asyncio.create_task(self._sweep_loop())

    async def _stop_sharing(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for uuid in list(self._remote):
            await self._drop_remote(uuid)

    async def _running_rows(self) -> Sequence[CodeSession]:
        """Every session whose sandbox is running or starting, on any replica."""
        async with self.sessions.db.session() as s:
            return (
                await s.scalars(
                    select(CodeSession).where(
                        CodeSession.sandbox_status.in_(("running", "starting"))
                    )
                )
            ).all()

    async def _held_elsewhere(self) -> set[str]:
        """Running sessions of this server whose lease another replica holds."""
        if self.leases is None:
            return set()
        rows = await self._running_rows()
        names = {
            session_lease(str(sess.uuid)): str(sess.uuid) for sess in rows if self._owned(sess)
        }
        live = await self.leases.holders(names)
        me = self.leases.replica_id
        return {names[n] for n, (holder, _) in live.items() if holder != me}

    async def _connect_remote(self, sess: CodeSession) -> Sandbox:
        """The sandbox the live lease holder runs (``ensure_started`` holds the lock): once its
        row says ``running``, a connection to its agent. Waits while the holder starts it; if
        the holder's lease lapses meanwhile, this replica takes the session over."""
        uuid = str(sess.uuid)
        deadline = time.monotonic() + self.settings.sandbox_start_timeout_s
        error: SandboxError | None = None
        while True:
            row = await self._row(sess.id)
            if row is None:
                raise SandboxError("session_gone", "The session was deleted.")
            if row.sandbox_status == "running" and row.sandbox_state:
                try:
                    sandbox = await self.runtime.connect(uuid, row.sandbox_state)
                except SandboxError as exc:
                    error = exc
                else:
                    self._remote[uuid] = RemoteSandbox(sandbox, row.sandbox_state.get("agent"))
                    log.info("sandbox %s: connected to the agent another replica runs", uuid)
                    return sandbox
            if await self._take_lease(uuid):  # the holder is gone: take it over here
                try:
                    self._check_caps(row.user_id)
                    self._starting[uuid] = row.user_id
                    return await self._start(row, uuid)
                except BaseException:
                    await self._release_lease(uuid)
                    raise
                finally:
                    self._starting.pop(uuid, None)
            if time.monotonic() > deadline:
                raise Unavailable(
                    "this session's sandbox runs on another replica, which this one cannot "
                    f"reach{f' ({error.user_message})' if error else ''}; try again",
                    code="sandbox_unreachable",
                    retry_after=int(self.settings.lease_ttl_s) + 1,
                )
            await asyncio.sleep(0.2)

    async def _row(self, session_id: int) -> CodeSession | None:
        async with self.sessions.db.session() as s:
            return await s.get(CodeSession, session_id)

    async def _drop_remote(self, uuid: str) -> None:
        if self._remote.pop(uuid, None) is None:
            return
        for hook in self.on_remote_dropped:
            try:
                await hook(uuid)
            except Exception:
                log.exception("a remote-dropped hook of sandbox %s failed", uuid)

    def is_remote(self, session_uuid: str) -> bool:
        """Whether this replica serves the session through another replica's sandbox."""
        return session_uuid in self._remote

    async def attached(self, sess: CodeSession) -> Sandbox | None:
        """The session's sandbox if it runs (here, or held by another replica), never starting
        one: for listing and closing terminals."""
        uuid = str(sess.uuid)
        active = self._active.get(uuid)
        if active is not None:
            held: Sandbox = active.sandbox
            return held
        remote = self._remote.get(uuid)
        if remote is not None:
            return remote.sandbox
        row = await self._row(sess.id)
        if row is None or row.sandbox_status != "running":
            return None
        return await self.ensure_started(row)

    async def _sweep_loop(self) -> None:
        interval = max(0.5, self.settings.lease_renew_interval_s)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.warning("the replica sweep failed", exc_info=True)

    async def sweep(self) -> None:
        """Take over running sessions whose holder's lease lapsed (adopting a live sandbox, or
        marking a dead one ``stopped``) and drop remote handles whose sandbox changed."""
        assert self.leases is not None
        rows = await self._running_rows()
        running = {str(r.uuid): r for r in rows}
        for uuid, remote in list(self._remote.items()):
            row = running.get(uuid)
            if row is None or (row.sandbox_state or {}).get("agent") != remote.agent:
                await self._drop_remote(uuid)
        idle = {
            u: r for u, r in running.items() if u not in self._active and u not in self._starting
        }
        live = await self.leases.holders([session_lease(u) for u in idle])
        for uuid, row in idle.items():
            if session_lease(uuid) not in live and not self._lock(uuid).locked():
                await self._take_over(row)

    async def _take_over(self, row: CodeSession) -> None:
        uuid = str(row.uuid)
        async with self._lock(uuid):
            if uuid in self._active or not await self._take_lease(uuid):
                return
            await self._drop_remote(uuid)
            fresh = await self._row(row.id)
            try:
                if fresh is None or fresh.sandbox_status not in ("running", "starting"):
                    raise LookupError("no longer running")
                if fresh.sandbox_status == "running" and fresh.sandbox_state:
                    try:
                        await self.runtime.connect(uuid, fresh.sandbox_state)  # does it answer?
                    except SandboxError:
                        pass
                    else:
                        self._starting[uuid] = fresh.user_id
                        try:
                            await self._start(fresh, uuid)
                        finally:
                            self._starting.pop(uuid, None)
                        log.info("sandbox %s: taken over from a replica that stopped", uuid)
                        return
                await self._set_status(
                    fresh.id, uuid, "stopped",
                    "The server running this sandbox stopped; start it again.",
                )  # fmt: skip
                await self._release_lease(uuid)
            except LookupError:
                await self._release_lease(uuid)
            except Exception:
                log.exception("taking over sandbox %s failed", uuid)
                await self._release_lease(uuid)

    async def stop_anywhere(self, sess: CodeSession, reason: str, *, delete: bool = False) -> None:
        """Stop the session's sandbox wherever it runs: here, or asked of the replica holding
        it (over the event bus), waiting (bounded) until its row says it stopped. ``delete``:
        the holder also deletes the workspace storage it keeps (the session is being deleted;
        a replica's storage lives in its own data dir)."""
        uuid = str(sess.uuid)
        if uuid in self._active or self.leases is None or not self.events.shared:
            await self.stop(uuid, reason=reason)
            return
        holder = await self.leases.holder(session_lease(uuid))
        if holder is None or holder[0] == self.leases.replica_id:
            await self.stop(uuid, reason=reason)
            return
        await self.events.publish_to_replicas(
            uuid, {"type": STOP_REQUEST, "reason": reason, "delete": delete}
        )
        deadline = time.monotonic() + self.settings.sandbox_start_timeout_s
        while time.monotonic() < deadline:
            row = await self._row(sess.id)
            if row is None or row.sandbox_status not in ("running", "starting"):
                break
            await asyncio.sleep(0.1)
        await self._drop_remote(uuid)

    async def _on_replica_message(self, session_uuid: str, message: dict[str, Any]) -> None:
        if message.get("type") == STOP_REQUEST and session_uuid in self._active:
            reason = str(message.get("reason") or "stopped")[:200]
            await self.stop(session_uuid, reason=reason)
            if message.get("delete") is True:
                await self.runtime.delete_workspace(session_uuid)

    async def _client_lease(self, session_uuid: str, take: bool) -> None:
        if self.leases is None or take == (session_uuid in self._clients):
            return
        name = client_lease(session_uuid, self.leases.replica_id)
        try:
            if take:
                self._clients.add(session_uuid)
                await self.leases.acquire(name)
            else:
                self._clients.discard(session_uuid)
                await self.leases.release(name)
        except Exception:  # the DB is down: the holder may stop an idle sandbox early
            log.warning("client lease of sandbox %s: the database failed", session_uuid,
                        exc_info=True)  # fmt: skip

    async def _used_elsewhere(self, uuid: str) -> bool:
        """Whether clients use the sandbox through other replicas (their client leases)."""
        if self.leases is None:
            return False
        try:
            return await self.leases.has_clients(uuid)
        except Exception:
            log.warning("sandbox %s: client leases unreadable; not stopped", uuid, exc_info=True)
            return True
