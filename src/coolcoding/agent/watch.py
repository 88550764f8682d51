"""The agent's workspace watcher: ``filesync.watcher.TreeWatcher`` (one inotify instance of the
sandbox user, never following a symlink) turned into ``fs.changes`` events for subscribers.

A batch names paths, not kinds of event: each path is reported with its state *now* (its type,
or ``absent``), which is what a reconciler needs and what stays true when events coalesce. A
kernel queue overflow becomes ``rescan: true`` (list everything with hashes and compare).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from coolcoding.agent.files import TMP_PREFIX, WorkspaceFs, entry_type, is_utf8, printable
from coolcoding.filesync.watcher import Batch, TreeWatcher

log = logging.getLogger(__name__)
MAX_CHANGES_PER_EVENT = 1000

Publish = Callable[[dict[str, Any]], None]


class WorkspaceWatch:
    def __init__(
        self,
        fs: WorkspaceFs,
        publish: Publish,
        *,
        debounce_ms: int = 50,
        max_delay_ms: int = 500,
        max_watches: int = 0,
        max_pending: int = 0,
    ) -> None:
        self._fs = fs
        self._publish = publish
        self._watcher: TreeWatcher | None = None
        self._debounce_ms = debounce_ms
        self._max_delay_ms = max(max_delay_ms, debounce_ms)
        self._max_watches = max_watches or None
        self._max_pending = max_pending or None

    @property
    def watch_count(self) -> int:
        return self._watcher.watch_count if self._watcher is not None else 0

    def pending(self, path: str) -> bool:
        """Whether a change to ``path`` is queued (in the kernel or the current batch)."""
        return self._watcher is not None and self._watcher.pending(path)

    @property
    def running(self) -> bool:
        return self._watcher is not None

    def start(self) -> None:
        if self._watcher is None:
            watcher = TreeWatcher(
                self._fs.root,
                self._on_batch,
                debounce_ms=self._debounce_ms,
                max_delay_ms=self._max_delay_ms,
                max_watches=self._max_watches,
                max_pending=self._max_pending,
            )
            watcher.start()  # raises (e.g. EMFILE: no inotify instance left): not kept
            self._watcher = watcher

    async def flush(self) -> None:
        """Deliver what the kernel queued so far (at a shell command's end, before its record)."""
        if self._watcher is not None:
            await self._watcher.flush()

    async def close(self) -> None:
        if self._watcher is not None:
            await self._watcher.close()
            self._watcher = None

    async def _on_batch(self, batch: Batch) -> None:
        changes, overflow = await asyncio.to_thread(self._describe, batch)
        watches = self.watch_count
        for i in range(0, max(len(changes), 1), MAX_CHANGES_PER_EVENT):
            part = changes[i : i + MAX_CHANGES_PER_EVENT]
            if part or overflow:
                self._publish({"changes": part, "rescan": overflow, "watches": watches})

    def _describe(self, batch: Batch) -> tuple[list[dict[str, Any]], bool]:
        """Each path with its state now (a worker thread: lstat and folder walks)."""
        if batch.overflow:
            return [], True
        paths = set(batch.paths)
        for d in batch.new_dirs:  # written into before its watch existed: report its content
            for p, _st in self._fs.walk(d):
                paths.add(p)
                if self._max_pending is not None and len(paths) > self._max_pending:
                    return [], True  # cheaper as one rescan by content hash
        changes: list[dict[str, Any]] = []
        for path in sorted(paths):
            if path.rpartition("/")[2].startswith(TMP_PREFIX):
                continue
            if not is_utf8(path):
                changes.append({"path": printable(path), "type": "invalid_name"})
                continue
            st = self._fs.lstat(path)
            changes.append(
                {"path": path, "type": "absent" if st is None else entry_type(st.st_mode)}
            )
        return changes, False
