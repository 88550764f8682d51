"""The composition root: the platform's long-lived parts, built once per app, typed.

Routers reach them through ``api/deps.py``; services get what they need by constructor. Nothing
here is looked up by name and no module imports the platform back: each part is built from the
parts it needs, in this one place.

When the sandbox runtime cannot work on this host, ``sandbox_unavailable`` says why and the
interactive parts (``runtime``, ``sandboxes``, ``sync``, ``terminals``, ``commands``) are
``None``: their routes answer 503 with that message and the rest of the API keeps working.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import CodeSession
from coolcoding.errors import NotFound
from coolcoding.execution.judge import Judge
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.filesync.relay import SandboxWriteRelay
from coolcoding.filesync.sync import SyncEngine
from coolcoding.sandbox.base import Runtime, Sandbox, SandboxError
from coolcoding.sandbox.local.identity import server_id
from coolcoding.sandbox.registry import make_runtime
from coolcoding.schemas.ws import FileChanged, FileDeleted, FileMoved
from coolcoding.services.access import AccessService
from coolcoding.services.accounts import AccountService
from coolcoding.services.api_tokens import ApiTokenService
from coolcoding.services.archive import ArchiveService
from coolcoding.services.commands import CommandLog
from coolcoding.services.events import EventBus
from coolcoding.services.executions import ExecutionService
from coolcoding.services.leases import LeaseService
from coolcoding.services.preferences import PreferencesService
from coolcoding.services.preview import PreviewService
from coolcoding.services.public_links import PublicLinkService, link_fork_grant
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.services.sandboxes import SandboxManager
from coolcoding.services.search import SearchService
from coolcoding.services.sessions import SessionService
from coolcoding.services.sharing import SharingService
from coolcoding.services.templates import TemplateService
from coolcoding.services.workspace import Change, WorkspaceRef, WorkspaceService
from coolcoding.settings import Settings
from coolcoding.terminal.manager import TerminalManager

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
        self.accounts = AccountService(
            self.db, settings, self.login_limiter, self.redis, self.events
        )
        self.sessions = SessionService(
            self.db,
            owner_cache_ttl_s=settings.auth_cache_ttl_s,
            max_per_user=settings.max_sessions_per_user,
        )
        self.api_tokens = ApiTokenService(
            self.db, settings.api_tokens_max_per_user, settings.auth_cache_ttl_s, self.events
        )
        self.accounts.on_deleted.append(self.api_tokens.forget_user)
        self.workspace = WorkspaceService(self.db, settings)
        self.workspace.sinks.append(self._publish_changes)
        # File history, snapshots, trash, forks (services/history.py, snapshots.py).
        from coolcoding.services.history import HistoryRecorder, HistoryService
        from coolcoding.services.history_deferred import HistoryCompactor
        from coolcoding.services.snapshots import SnapshotService

        self.workspace.recorder = HistoryRecorder(settings)
        self.history = HistoryService(self.db, settings, self.workspace)
        self.history_compactor = HistoryCompactor(self.db, settings)
        self.snapshots = SnapshotService(self.db, settings, self.workspace)
        self.sessions.before_delete.append(self.snapshots.trash_workspace)
        self.accounts.before_delete.append(self.snapshots.release_user)
        # Sharing: roles, invitations, public links (services/access.py, sharing.py).
        self.access = AccessService(self.db, self.events, cache_ttl_s=settings.share_cache_ttl_s)
        self.sharing = SharingService(
            self.db, self.access, max_members=settings.share_max_collaborators
        )
        self.public_links = PublicLinkService(
            self.db, max_per_session=settings.public_link_max_per_session
        )
        self.snapshots.fork_grants.append(self._member_may_fork)
        self.snapshots.fork_grants.append(link_fork_grant)
        self.public_link_limiter = RateLimiter(
            settings.public_link_rate_limit_per_minute, 60, self.redis, prefix="cc:publink"
        )
        # The IDE's files in/out, search, templates and preferences (docs/API.md "IDE").
        self.templates = TemplateService(self.db, self.workspace)
        self.archives = ArchiveService(self.workspace, settings)
        self.archives.before_import.append(self._snapshot_before_import)
        self.search = SearchService(self.db, settings)
        self.preferences = PreferencesService(self.db)
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        # Live co-editing (collab/): Yjs documents of open files, shared across replicas.
        from coolcoding.collab.hub import CollabHub

        self.collab = CollabHub(
            self.workspace, self.events, self.redis, settings, replica_id=self.events.origin
        )
        self.on_stop(self.collab.stop)
        # Session sandboxes, file sync, terminals and command history (None: see ``unavailable``).
        self.sandbox_unavailable: str | None = None
        self.runtime: Runtime | None = None
        self.sandboxes: SandboxManager | None = None
        self.sync: SyncEngine | None = None
        self.terminals: TerminalManager | None = None
        self.commands: CommandLog | None = None
        self.preview: PreviewService | None = None
        try:
            self.runtime = make_runtime(settings)
        except SandboxError as exc:
            log.error("session sandboxes are unavailable: %s", exc.log_message)
            self.sandbox_unavailable = exc.user_message
        else:
            self._build_sandboxes(self.runtime)
        # Languages, the judge with its queue, and runs in sessions.
        self.languages = LanguageRegistry()
        self.executions = self._build_executions()

    def _build_sandboxes(self, runtime: Runtime) -> None:
        settings = self.settings
        sync = SyncEngine(self.workspace, self.events, settings)
        # Editor changes for sandboxes other replicas run go to them over the bus.
        SandboxWriteRelay(sync, self.events)
        sandboxes = SandboxManager(settings, runtime, self.sessions, self.events, sync, self.leases)
        commands = CommandLog(self.db)
        terminals = TerminalManager(settings, sandboxes, commands, sync)
        self.sync, self.sandboxes, self.commands, self.terminals = (
            sync,
            sandboxes,
            commands,
            terminals,
        )
        # Port previews of programs in the sandboxes (api/routes/preview.py).
        self.preview = PreviewService(sandboxes.get)
        self.on_stop(self.preview.close)
        # Deleting a session stops its sandbox and removes its storage.
        self.sessions.before_delete.append(sandboxes.delete_session_files)

        async def start() -> None:
            await sandboxes.startup()
            terminals.start()

        async def stop() -> None:
            await terminals.shutdown()
            await sandboxes.shutdown()

        self.on_start(start)
        self.on_stop(stop)

    def _build_executions(self) -> ExecutionService:
        settings = self.settings
        judge = Judge(self.runtime, self.languages, settings)
        limiter = RateLimiter(settings.exec_rate_limit_per_minute, 60, self.redis, prefix="cc:exec")
        svc = ExecutionService(self.db, settings, self.languages, judge, limiter)
        svc.unavailable = self.sandbox_unavailable
        svc.leases = self.leases
        # New sessions and language changes must name a language the registry knows.
        self.sessions.set_languages(self.languages.ids)
        sandboxes = self.sandboxes
        if sandboxes is not None:

            @contextlib.asynccontextmanager
            async def session_sandbox(session: CodeSession) -> AsyncIterator[Sandbox]:
                """The session's started sandbox, held (never idle-stopped) while a run uses it."""
                sandbox = await sandboxes.ensure_started(session)
                async with sandboxes.hold(str(session.uuid)):
                    yield sandbox

            svc.runner.sandbox_for = session_sandbox
        svc.runner.file_exists = self._file_exists
        self.on_start(svc.start)
        self.on_stop(svc.stop)
        return svc

    async def _member_may_fork(self, user_id: int, session: CodeSession) -> bool:
        """An accepted member whose role the workspace's ``fork_policy`` allows; a member below
        it: 403 ``forbidden_role`` naming the role needed (unless another grant allows it)."""
        from coolcoding.services.sharing import DEFAULT_FORK_POLICY, FORK_POLICY_ROLES

        need = FORK_POLICY_ROLES.get(session.fork_policy, FORK_POLICY_ROLES[DEFAULT_FORK_POLICY])
        try:
            await self.access.require(user_id, str(session.uuid), need)
        except NotFound:
            return False
        return True

    async def _file_exists(self, session: CodeSession, path: str) -> bool:
        ref = WorkspaceRef(session_id=session.id, session_uuid=str(session.uuid))
        try:
            await self.workspace.read(ref, path)
        except NotFound:
            return False
        return True

    async def _snapshot_before_import(self, ref: WorkspaceRef, name: str) -> None:
        """A zip import is a restore point: an automatic snapshot first (history on)."""
        if self.settings.history_enabled:
            await self.snapshots.create(ref, name, kind="auto")

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
        await self.snapshots.start()
        await self.history_compactor.start()

    async def stop(self) -> None:
        await self.history_compactor.stop()
        await self.snapshots.stop()
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
