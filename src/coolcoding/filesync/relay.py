"""Editor changes for a sandbox that another replica runs: relayed over the event bus.

The replica that handles an editor save, delete or move commits it to the DB (the truth) and,
when it does not run the session's sandbox itself, sends a ``sandbox_write`` replica message
naming the changes (not their content). The replica that runs the sandbox (it holds the
session's lease) applies them through its normal path (``SyncEngine.on_db_changes``: content
re-read from the DB, guarded writes that keep a program's unsynced change as a conflict copy),
then acknowledges with a ``sandbox_write_applied`` event to the session's browsers. The HTTP
answer of the save only says the DB has it: the sandbox write is asynchronous across replicas,
and a message lost with a dying replica is healed when the next holder materializes the DB.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from coolcoding.filesync.session_state import SOURCE
from coolcoding.filesync.sync import SyncEngine
from coolcoding.services.events import Event, EventBus
from coolcoding.services.workspace_types import Change

log = logging.getLogger(__name__)

SANDBOX_WRITE = "sandbox_write"
_FIELDS = {f.name for f in dataclasses.fields(Change)}


class SandboxWriteRelay:
    def __init__(self, sync: SyncEngine, events: EventBus) -> None:
        self.sync = sync
        self.events = events
        sync.workspace.sinks.append(self.on_db_changes)
        events.on_replica_message(self.on_message)

    async def on_db_changes(self, session_uuid: str, changes: Sequence[Change]) -> None:
        """Workspace sink: relay editor changes when the sandbox is not run here."""
        ours = [dataclasses.asdict(c) for c in changes if c.source != SOURCE]
        if not ours or self.sync.get(session_uuid) is not None or not self.events.shared:
            return
        await self.events.publish_to_replicas(
            session_uuid, {"type": SANDBOX_WRITE, "changes": ours}
        )

    async def on_message(self, session_uuid: str, message: Event) -> None:
        """Apply another replica's relayed changes if this replica runs the sandbox."""
        if message.get("type") != SANDBOX_WRITE or self.sync.get(session_uuid) is None:
            return
        try:
            changes = [_change(d) for d in message.get("changes", [])]
        except (TypeError, ValueError):
            log.warning("a malformed sandbox_write message for %s was ignored", session_uuid)
            return
        await self.sync.on_db_changes(session_uuid, changes)
        await self.events.publish(
            session_uuid,
            {"type": "sandbox_write_applied", "paths": [c.to_path or c.path for c in changes]},
        )


def _change(data: Any) -> Change:
    if not isinstance(data, dict) or not set(data) <= _FIELDS:
        raise ValueError("not a change")
    return Change(**data)
