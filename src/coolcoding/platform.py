"""The platform's long-lived parts, built once per app and torn down on shutdown.

Routers reach them through ``api/deps.py``; services get what they need by constructor.
Components of other layers (sandbox manager, terminals, judge) register here in ``start``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.sandbox.local.identity import server_id
from coolcoding.schemas.ws import FileChanged, FileDeleted, FileMoved
from coolcoding.services.accounts import AccountService
from coolcoding.services.archive import ArchiveService
from coolcoding.services.events import EventBus
from coolcoding.services.leases import LeaseService
from coolcoding.services.preferences import PreferencesService
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.services.search import SearchService
from coolcoding.services.sessions import SessionService
from coolcoding.services.templates import TemplateService
from coolcoding.services.workspace import Change, WorkspaceService
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.redis: Any = None
        if settings.redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(settings.redis_url)
        self.events = EventBus(settings.redis_url)
        # Session and replica leases (which replica does the once-per-session work).
        self.leases = LeaseService(
            self.db, settings, server_id=lambda: server_id(settings.data_dir)
        )
        self.login_limiter = RateLimiter(
            settings.login_rate_limit, settings.login_rate_window_s, self.redis, prefix="cc:login"
        )
        self.accounts = AccountService(self.db, settings, self.login_limiter, self.redis)
        self.sessions = SessionService(
            self.db,
            owner_cache_ttl_s=settings.auth_cache_ttl_s,
            max_per_user=settings.max_sessions_per_user,
        )
        self.workspace = WorkspaceService(self.db, settings)
        self.workspace.sinks.append(self._publish_changes)
        # The IDE's files in/out, search, templates and preferences (docs/API.md "IDE").
        self.templates = TemplateService(self.db, self.workspace)
        self.archives = ArchiveService(self.workspace, settings)
        self.search = SearchService(self.db, settings)
        self.preferences = PreferencesService(self.db)
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        # Optional components, attached by their layers (see ``coolcoding.app``).
        self.components: dict[str, Any] = {}
        # Session sandboxes, file sync, terminals (registers components["runtime"] first).
        from coolcoding.sandbox_wiring import attach_sandboxes

        attach_sandboxes(self)
        # Languages, judge queue and runs: components["languages"], components["executions"].
        from coolcoding.execution.wiring import attach_execution

        attach_execution(self)

    async def _publish_changes(self, session_uuid: str, changes: Any) -> None:
        for c in changes:
            await self.events.publish(session_uuid, change_event(c))

    def on_start(self, hook: Hook) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade(self.db.engine)
        await self.events.start()
        await self.leases.start()
        for hook in self._on_start:
            await hook()

    async def stop(self) -> None:
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")
        await self.leases.stop()
        await self.events.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


def change_event(c: Change) -> dict[str, Any]:
    """The browser-facing event of a workspace change (docs/API.md, events WebSocket)."""
    # The sync marks its own changes "sandbox"; everything else came through the API.
    source = "sandbox" if c.source == "sandbox" else "api"
    if c.kind == "delete":
        return FileDeleted(path=c.path, item_type=c.item_type, source=source).as_dict()
    if c.kind == "move":
        return FileMoved(
            from_=c.path, to=c.to_path or "", item_type=c.item_type, source=source
        ).as_dict()
    return FileChanged(
        path=c.path, item_type=c.item_type, version=c.version, size=c.size, source=source
    ).as_dict()
