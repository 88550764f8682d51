"""Leases with expiry in the database: which replica does the once-per-session work.

Every replica (one API process, its id made per process) holds ``replica:<id>`` while it lives,
and ``session:<uuid>`` for each session whose sandbox it runs: it syncs that sandbox to the DB and
stops it when idle. A renew loop extends all of them every ``lease_renew_interval_s``; a lease
that could not be renewed (the replica lost the database for longer than ``lease_ttl_s`` and
another replica took the session over) is reported to its ``on_lost`` callback, which stops the
work. Start-up recovery touches only rows whose lease lapsed. The DB is the truth on SQLite and
PostgreSQL alike (Redis keys with expiry would add a second source of truth and a dependency
the embedded single-process mode does not have).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta

from coolcoding.db import leases as stmts
from coolcoding.db.engine import Database
from coolcoding.db.models import utcnow
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

LostHook = Callable[[str], Awaitable[None]]


def session_lease(session_uuid: str) -> str:
    return f"session:{session_uuid}"


def client_lease(session_uuid: str, replica_id: str) -> str:
    """Held by a replica while clients use the session's sandbox through it without holding the
    session (the holder's idle stop waits while any is live)."""
    return f"client:{session_uuid}:{replica_id}"


def replica_lease(replica_id: str) -> str:
    return f"replica:{replica_id}"


def new_replica_id(server_id: str | None = None) -> str:
    """A fresh id per process, prefixed with its server's id (one per data dir) when known, so a
    later process of the same server can take over what a dead earlier one held."""
    return f"{server_id or 'rep'}.{secrets.token_hex(8)}"


class LeaseService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        replica_id: str | None = None,
        server_id: Callable[[], str] | None = None,
    ) -> None:
        self.db = db
        # Read lazily: building the app (e.g. for its OpenAPI document) must not write the
        # data dir.
        self._server_id = server_id
        self.ttl = timedelta(seconds=settings.lease_ttl_s)
        self.interval = settings.lease_renew_interval_s
        self.address = settings.replica_address or None
        self._replica_id = replica_id
        self._held: dict[str, LostHook | None] = {}
        self._loop: asyncio.Task[None] | None = None

    @property
    def replica_id(self) -> str:
        if self._replica_id is None:
            self._replica_id = new_replica_id(self._server_id() if self._server_id else None)
        return self._replica_id

    def _expiry(self) -> tuple[datetime, datetime]:
        now = utcnow()
        return now, now + self.ttl

    async def acquire(
        self, name: str, on_lost: LostHook | None = None, *, from_predecessor: bool = False
    ) -> bool:
        """Take ``name`` (or renew it if held already) and keep renewing it until released.

        ``from_predecessor`` (start-up recovery only): also take it from an earlier process of
        this same server (same data dir), live-looking because its lease has not expired yet
        although that process is dead (two live processes never share a data dir)."""
        now, expires = self._expiry()
        prefix = None
        if from_predecessor and self._server_id is not None:
            prefix = f"{self._server_id()}."
        ok = await stmts.take(
            self.db.engine, name, self.replica_id, self.address, now, expires, prefix
        )
        if ok:
            self._held[name] = on_lost
        return ok

    async def release(self, name: str) -> None:
        self._held.pop(name, None)
        await stmts.release(self.db.engine, [name], self.replica_id)

    def holds(self, name: str) -> bool:
        return name in self._held

    async def holder(self, name: str) -> tuple[str, str | None] | None:
        """The live holder of ``name`` and its address, or ``None`` when the lease lapsed."""
        return (await stmts.live(self.db.engine, [name], utcnow())).get(name)

    async def holders(self, names: Collection[str]) -> dict[str, tuple[str, str | None]]:
        """The live ones of ``names`` (one query): name -> (holder, address)."""
        return await stmts.live(self.db.engine, names, utcnow())

    async def has_clients(self, session_uuid: str) -> bool:
        """Whether any replica holds a live ``client_lease`` of the session."""
        return await stmts.live_prefixed(self.db.engine, f"client:{session_uuid}:", utcnow()) > 0

    async def live_replicas(self, replica_ids: Collection[str]) -> set[str]:
        """Those of ``replica_ids`` whose replica lease is live (the replica is running)."""
        found = await stmts.live(self.db.engine, [replica_lease(r) for r in replica_ids], utcnow())
        return {holder for holder, _ in found.values()}

    async def renew_all(self) -> set[str]:
        """Renew every held lease; those lost are dropped and their hooks called."""
        mine = replica_lease(self.replica_id)
        names = [*self._held, mine]
        _, expires = self._expiry()
        kept = await stmts.renew(self.db.engine, names, self.replica_id, expires)
        if mine not in kept:  # our own row vanished (an operator cleaned up): make it again
            await self.acquire(mine)
        # Only among the names renewed: one acquired while the renewal ran is not lost.
        lost = [n for n in names if n in self._held and n not in kept and n != mine]
        for name in lost:
            hook = self._held.pop(name, None)
            log.warning("lease %s was taken over by another replica", name)
            if hook is not None:
                try:
                    await hook(name)
                except Exception:
                    log.exception("stopping the work of lost lease %s failed", name)
        return set(lost)

    async def start(self) -> None:
        await self.acquire(replica_lease(self.replica_id))
        self._loop = asyncio.create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.renew_all()
            except Exception:  # the DB is down: retry; leases lapse after the TTL meanwhile
                log.warning("renewing leases failed", exc_info=True)

    async def stop(self) -> None:
        """Cancel renewal and give every lease back (a clean shutdown hands over at once)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        names = [*self._held, replica_lease(self.replica_id)]
        self._held.clear()
        with contextlib.suppress(Exception):
            await stmts.release(self.db.engine, names, self.replica_id)
