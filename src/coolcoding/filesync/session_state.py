"""The sync engine's state of one attached session (shared by the engine and its writers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from coolcoding.filesync.budget import Pacer
from coolcoding.filesync.hostfs import LateCheck, WorkspaceDir
from coolcoding.filesync.watcher import TreeWatcher
from coolcoding.sandbox.base import Sandbox
from coolcoding.services.workspace import WorkspaceRef

SOURCE = "sandbox"  # the ``source`` of DB changes the sync makes (the sink skips its own)


@dataclass
class SessionSync:
    ref: WorkspaceRef
    sandbox: Sandbox
    dir: WorkspaceDir
    known: dict[str, str]
    watcher: TreeWatcher | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reported: set[tuple[str, str]] = field(default_factory=set)
    synced_batches: int = 0
    allow_deletes: bool = True
    late: list[LateCheck] = field(default_factory=list)
    late_timer: asyncio.TimerHandle | None = None
    pacer: Pacer = field(default_factory=lambda: Pacer(1_000_000))
    rescan_at: float = float("-inf")  # loop time of the last full rescan
    quota_told: bool = False  # the user was told that new sandbox files are over the quota
