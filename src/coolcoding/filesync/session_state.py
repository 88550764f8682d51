"""The sync engine's state of one attached session (shared by the engine and its writers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from coolcoding.filesync.agentfs import AgentWatcher, SandboxFiles
from coolcoding.filesync.budget import Pacer
from coolcoding.sandbox.base import Sandbox
from coolcoding.services.workspace import WorkspaceRef

SOURCE = "sandbox"  # the ``source`` of DB changes the sync makes (the sink skips its own)


@dataclass
class SessionSync:
    ref: WorkspaceRef
    sandbox: Sandbox
    files: SandboxFiles
    known: dict[str, str]
    watcher: AgentWatcher | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reported: set[tuple[str, str]] = field(default_factory=set)
    synced_batches: int = 0
    allow_deletes: bool = True
    pacer: Pacer = field(default_factory=lambda: Pacer(1_000_000))
    rescan_at: float = float("-inf")  # loop time of the last full rescan
    quota_told: bool = False  # the user was told that new sandbox files are over the quota
