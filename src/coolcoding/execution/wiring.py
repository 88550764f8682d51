"""Attach the execution layer to a ``Platform``: language registry, judge, queue, session runs.

Registers ``platform.components["languages"]`` and ``["executions"]``. The sandbox runtime is
``components["runtime"]`` when another layer registered one, else made here from the settings.
Runs in a session use ``components["sandboxes"]`` (the session sandbox manager: started and
synced by it, held while the run lasts) when present; without it the session's sandbox is
started through the runtime and its files are written from the database before each run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from coolcoding.db.models import CodeSession
from coolcoding.errors import NotFound
from coolcoding.execution.judge import Judge
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.sandbox.base import Runtime, Sandbox, SandboxError, SandboxSpec
from coolcoding.services.executions import ExecutionService
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.services.workspace import WorkspaceRef

if TYPE_CHECKING:
    from coolcoding.platform import Platform

log = logging.getLogger(__name__)


def attach_execution(platform: Platform) -> ExecutionService:
    settings = platform.settings
    languages = LanguageRegistry()
    owned: list[Runtime] = []

    def runtime() -> Runtime:
        found = platform.components.get("runtime")
        if isinstance(found, Runtime):
            return found
        if "sandbox_unavailable" in platform.components:
            raise SandboxError("runtime_unavailable", platform.components["sandbox_unavailable"])
        from coolcoding.sandbox.registry import make_runtime

        made = make_runtime(settings)
        platform.components["runtime"] = made
        owned.append(made)
        return made

    judge = Judge(runtime, languages, settings)
    limiter = RateLimiter(settings.exec_rate_limit_per_minute, 60, platform.redis, prefix="cc:exec")
    svc = ExecutionService(platform.db, settings, languages, judge, limiter)
    svc.unavailable = platform.components.get("sandbox_unavailable")
    svc.leases = platform.leases
    platform.components["languages"] = languages
    # New sessions and language changes must name a language the registry knows.
    platform.sessions.set_languages(languages.ids)
    platform.components["executions"] = svc

    @contextlib.asynccontextmanager
    async def session_sandbox(session: CodeSession) -> AsyncIterator[Sandbox]:
        """The session's started sandbox, held (never idle-stopped) while the run uses it."""
        manager: Any = platform.components.get("sandboxes")
        if manager is not None:
            sandbox: Sandbox = await manager.ensure_started(session)
            async with manager.hold(str(session.uuid)):
                yield sandbox
            return
        spec = SandboxSpec(
            session_uuid=str(session.uuid),
            network=session.network_enabled,
            memory_mb=settings.sandbox_memory_mb,
            pids=settings.sandbox_pids,
            cpus=settings.sandbox_cpus,
            disk_bytes=settings.max_workspace_bytes,
        )
        sandbox = await judge.runtime().start(spec)
        ref = WorkspaceRef(session_id=session.id, session_uuid=str(session.uuid))
        files: dict[str, bytes | None] = {}
        async for path, kind, content in platform.workspace.iter_files(ref):
            files[path + "/" if kind == "folder" else path] = b"" if kind == "folder" else content
        await sandbox.write_files(files)
        yield sandbox

    async def file_exists(session: CodeSession, path: str) -> bool:
        ref = WorkspaceRef(session_id=session.id, session_uuid=str(session.uuid))
        try:
            await platform.workspace.read(ref, path)
        except NotFound:
            return False
        return True

    svc.runner.sandbox_for = session_sandbox
    svc.runner.file_exists = file_exists

    async def stop() -> None:
        await svc.stop()
        for made in owned:
            await made.shutdown()

    platform.on_start(svc.start)
    platform.on_stop(stop)
    return svc
