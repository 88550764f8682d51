"""Attach the interactive layer to a ``Platform``: session sandboxes, file sync and terminals.

Registers ``components["runtime"]``, ``["sandboxes"]`` (SandboxManager), ``["sync"]``
(SyncEngine), ``["terminals"]`` (TerminalManager) and ``["commands"]`` (CommandLog), their
start/stop hooks, and the session delete hook (stop the sandbox, remove its directory). When the
runtime cannot work on this host, nothing is registered and the sandbox routes answer 503 with
the runtime's message; the rest of the API keeps working.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from coolcoding.filesync.relay import SandboxWriteRelay
from coolcoding.filesync.sync import SyncEngine
from coolcoding.sandbox.base import SandboxError
from coolcoding.services.commands import CommandLog
from coolcoding.services.sandboxes import SandboxManager
from coolcoding.terminal.manager import TerminalManager

if TYPE_CHECKING:
    from coolcoding.platform import Platform

log = logging.getLogger(__name__)


def attach_sandboxes(platform: Platform) -> None:
    from coolcoding.sandbox.registry import make_runtime

    settings = platform.settings
    try:
        runtime = make_runtime(settings)
    except SandboxError as exc:
        log.error("session sandboxes are unavailable: %s", exc.log_message)
        platform.components["sandbox_unavailable"] = exc.user_message
        return
    sync = SyncEngine(platform.workspace, platform.events, settings)
    # Editor changes for sandboxes other replicas run go to them over the bus.
    SandboxWriteRelay(sync, platform.events)
    sandboxes = SandboxManager(
        settings, runtime, platform.sessions, platform.events, sync, platform.leases
    )
    commands = CommandLog(platform.db)
    terminals = TerminalManager(settings, sandboxes, commands, sync)
    platform.components.update(
        runtime=runtime, sandboxes=sandboxes, sync=sync, terminals=terminals, commands=commands
    )
    platform.sessions.before_delete.append(sandboxes.delete_session_files)

    async def start() -> None:
        await sandboxes.startup()
        terminals.start()

    async def stop() -> None:
        await terminals.shutdown()
        await sandboxes.shutdown()

    platform.on_start(start)
    platform.on_stop(stop)
