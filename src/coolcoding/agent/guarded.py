"""Guarded replacement of a workspace file, inside the agent (the lost-write fix of issue 12).

The server's editor content replaces a sandbox file only through ``WorkspaceDir.swap``: an atomic
``renameat2(RENAME_EXCHANGE)``, after which the replaced file is compared with the hashes the
caller (the sync engine) says the DB knows (``base``). Bytes the DB never saw (a terminal
appending between two syncs) are kept next to it as ``<name>.conflict-<timestamp><ext>`` and the
caller is told where (``files.swap`` result ``aside``), so it stores and announces the copy.

A writer that opened the old file just before the exchange can still write into it: the agent
keeps the replaced file open for ``late_s`` and looks again; bytes written meanwhile become a new
conflict copy in the workspace and an ``fs.conflict`` event for the subscribers (the watcher
reports the new file like any other, so it reaches the DB). ``run_late()`` does that at once
(the server calls ``fs.late`` before a final sync).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection
from typing import Any

from coolcoding.agent.files import FileOpError, WorkspaceFs
from coolcoding.filesync.hostfs import LateCheck
from coolcoding.filesync.paths import conflict_name

log = logging.getLogger(__name__)
LATE_CHECK_S = 1.0
MAX_COPY_TRIES = 1000

Publish = Callable[[dict[str, Any]], None]


class GuardedSwaps:
    def __init__(self, fs: WorkspaceFs, publish: Publish, max_file_bytes: int) -> None:
        self._fs = fs
        self._publish = publish
        self._limit = max_file_bytes
        self._late: list[LateCheck] = []
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[list[dict[str, Any]]] | None = None

    def swap(self, rel: str, data: bytes | None, base: Collection[str]) -> dict[str, Any]:
        """Put ``data`` at ``rel`` (``None``: remove it); run it in a worker thread, serialized
        with the agent's other writes. Raises ``FileOpError`` (``not_a_file``) when ``rel`` is
        not a plain file case (a folder in the way, a missing parent): plain writes then."""
        known = set(base)

        def aside(old: bytes | None, attempt: int) -> str | None:
            if old is not None and hashlib.sha256(old).hexdigest() in known:
                return None
            return conflict_name(rel, attempt=attempt)

        try:
            res = self._fs.swap(rel, data, aside, self._limit)
        except OSError as e:
            raise FileOpError("not_a_file", f"{rel!r}: {e.strerror or e}") from e
        if res.late is not None:
            self._late.append(res.late)
        out: dict[str, Any] = {
            "existed": res.existed,
            "aside": res.aside,
            "old_size": len(res.old) if res.old is not None else -1,
        }
        return out

    def schedule(self) -> None:
        """Look at the replaced files again in ``LATE_CHECK_S`` (called on the event loop)."""
        if self._late and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(LATE_CHECK_S, self._spawn)

    def _spawn(self) -> None:
        self._timer = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run_late(publish=True))

    async def run_late(self, *, publish: bool = False) -> list[dict[str, Any]]:
        """Every replaced file once more: what changed in it becomes a conflict copy."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        todo, self._late = self._late, []
        copies: list[dict[str, Any]] = []
        for late in todo:
            try:
                data = await asyncio.to_thread(late.changed, self._limit)
            except OSError:
                data = None
            finally:
                late.close()
            if data is None:
                continue
            copy = await asyncio.to_thread(self._store_copy, late.rel, data)
            if copy is None:
                continue
            item = {"path": late.rel, "conflict_path": copy}
            copies.append(item)
            if publish:
                self._publish(item)
        return copies

    def _store_copy(self, rel: str, data: bytes) -> str | None:
        for attempt in range(MAX_COPY_TRIES):
            name = conflict_name(rel, attempt=attempt)
            try:
                self._fs.write_atomic(name, data, expected_sha256=None, expect_absent=True)
            except FileOpError as e:
                if e.code == "conflict":
                    continue
                log.warning("late conflict copy of %s not written: %s", rel, e.message)
                return None
            return name
        return None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for late in self._late:
            late.close()
        self._late = []
