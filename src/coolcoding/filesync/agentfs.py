"""The sync engine's view of a sandbox's workspace: files and changes through the sandbox's agent.

No host path is involved: the agent (running as the sandbox user, inside the sandbox) watches
the workspace with its own inotify instance, reads, lists, hashes, renames and swaps files with
its no-symlink rules, and the engine talks to it over one connection (protocol 2,
docs/AGENT_PROTOCOL.md). So the sync works the same for every runtime whose sandboxes have an
agent, and a session costs no inotify instance of the server's uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coolcoding.agent.client import AgentClient, AgentConnectionLost, AgentError

log = logging.getLogger(__name__)
PROBE_CHUNK = 1000  # paths per files.probe call
_MARK = "_sync_mark"  # a local queue item: everything before it was handled


@dataclass(frozen=True)
class Info:
    """An entry as the agent saw it: ``file``, ``dir``, ``symlink``, ``other`` (a device,
    FIFO or socket) or ``invalid_name`` (not UTF-8; ``path`` shown escaped)."""

    type: str
    size: int
    mtime: float

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


@dataclass
class Probe:
    """One entry as the sync sees it: its info (``None``: absent), and a regular file's content
    (within the file limit; ``None`` otherwise)."""

    info: Info | None
    data: bytes | None = None


@dataclass
class Swapped:
    """What a guarded write replaced: whether a file was there, and where its content the DB
    never saw was kept (``aside``), with that content (``None``: over the file limit)."""

    existed: bool
    aside: str | None
    old: bytes | None


def _info(e: dict[str, Any]) -> Info | None:
    if e["type"] == "absent":
        return None
    return Info(str(e["type"]), int(e["size"]), float(e["mtime"]))


class SandboxFiles:
    """Workspace file access of one session, through one agent connection."""

    def __init__(self, client: AgentClient, max_file_bytes: int) -> None:
        self.client = client
        self.limit = max_file_bytes

    async def probe(self, paths: Iterable[str], *, content: bool = True) -> dict[str, Probe]:
        todo = list(paths)
        out: dict[str, Probe] = {}
        for i in range(0, len(todo), PROBE_CHUNK):
            got = await self.client.probe(
                todo[i : i + PROBE_CHUNK], max_bytes=self.limit, content=content
            )
            for e, data in got:
                out[e["path"]] = Probe(_info(dict(e)), data)
        return out

    async def stats(self, paths: Sequence[str]) -> dict[str, Info | None]:
        return {p: pr.info for p, pr in (await self.probe(paths, content=False)).items()}

    async def walk(self, rel: str = "", *, hashes: bool = False) -> list[tuple[str, Info, str]]:
        """Every entry below ``rel`` as (path, info, sha256 or ""); nothing if ``rel`` is gone."""
        try:
            entries = await self.client.list_tree(rel, hashes=hashes)
        except AgentError as exc:
            if exc.code in ("not_found", "not_a_folder", "unsafe_path"):
                return []
            raise
        out: list[tuple[str, Info, str]] = []
        for entry in entries:
            info = _info(dict(entry))
            if info is not None:
                out.append((entry["path"], info, entry.get("sha256", "")))
        return out

    async def read(self, rel: str) -> bytes | None:
        """A regular file's content within the limit; ``None`` if it is not one or too large."""
        try:
            data, _ = await self.client.read_file(rel, self.limit)
        except AgentError:
            return None
        return data

    async def swap(self, rel: str, data: bytes | None, base: Iterable[str]) -> Swapped | None:
        """The guarded write (``agent/guarded.py``); ``None`` when ``rel`` is not a plain file
        case (a missing parent, a folder in the way): the caller falls back to a plain write."""
        try:
            r = await self.client.swap(rel, data, sorted(set(base)))
        except AgentError as e:
            log.info("guarded write of %s fell back to a plain write: %s", rel, e)
            return None
        aside = r["aside"]
        old = await self.read(aside) if aside is not None and r["old_size"] >= 0 else None
        return Swapped(r["existed"], aside, old)

    async def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists, ``OSError`` else."""
        try:
            await self.client.move(src, dst)
        except AgentError as e:
            if e.code == "conflict":
                raise FileExistsError(dst) from e
            raise OSError(f"{src} -> {dst}: {e}") from e

    async def late_copies(self) -> list[tuple[str, str]]:
        return [(c["path"], c["conflict_path"]) for c in await self.client.fs_late()]


@dataclass
class Batch:
    """What changed since the last batch: paths (their state is probed when synced), names that
    are not UTF-8 (shown escaped), and whether to rescan everything."""

    paths: set[str] = field(default_factory=set)
    bad: set[str] = field(default_factory=set)
    overflow: bool = False


BatchHandler = Callable[[Batch], Awaitable[None]]
ConflictHandler = Callable[[str, str], Awaitable[None]]


class AgentWatcher:
    """The agent's ``fs.changes`` stream, handed to the engine one batch at a time (the events
    queued meanwhile are merged into the next batch, as the kernel's were)."""

    def __init__(
        self,
        client: AgentClient,
        on_batch: BatchHandler,
        on_conflict: ConflictHandler,
        *,
        max_pending: int = 0,
    ) -> None:
        self.client = client
        self.max_pending = max_pending  # paths merged into one batch before it is a rescan
        self.watch_count = 0  # the agent's inotify watches, as of its last event
        self._on_batch = on_batch
        self._on_conflict = on_conflict
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.subscribe(fs=True)
        self._task = asyncio.ensure_future(self._run())

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        queue = self.client.events
        closed = asyncio.ensure_future(self.client.wait_closed())
        get: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    log.info("the agent closed the sync connection")
                    return
                items = [get.result()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                await self._handle(items)
        finally:
            closed.cancel()
            if get is not None:
                get.cancel()

    async def _handle(self, items: list[dict[str, Any]]) -> None:
        batch = Batch()
        for msg in items:
            kind = msg.get("event") if msg.get("type") == "event" else msg.get("type")
            data = msg.get("data")
            if kind == "fs.changes" and isinstance(data, dict):
                self._add(batch, data)
            elif kind == "fs.conflict" and isinstance(data, dict):
                batch = await self._deliver(batch)
                path, cpath = data.get("path"), data.get("conflict_path")
                if isinstance(path, str) and isinstance(cpath, str):
                    await self._on_conflict(path, cpath)
            elif kind == _MARK:
                batch = await self._deliver(batch)
                fut = msg["future"]
                if not fut.done():
                    fut.set_result(None)
        await self._deliver(batch)

    def _add(self, batch: Batch, data: dict[str, Any]) -> None:
        watches = data.get("watches")
        if isinstance(watches, int) and not isinstance(watches, bool):
            self.watch_count = watches
        if data.get("rescan") is True:
            batch.overflow = True
        if batch.overflow:
            batch.paths.clear()  # a rescan by content hash is due anyway
            return
        changes = data.get("changes")
        for c in changes if isinstance(changes, list) else ():
            path = c.get("path") if isinstance(c, dict) else None
            if not isinstance(path, str) or not path:
                continue
            (batch.bad if c.get("type") == "invalid_name" else batch.paths).add(path)
        if self.max_pending and len(batch.paths) > self.max_pending:
            # Events queued while the engine worked (a storm): one rescan by content hash is
            # cheaper than following them, and the memory stays bounded.
            batch.paths.clear()
            batch.overflow = True

    async def _deliver(self, batch: Batch) -> Batch:
        if batch.paths or batch.bad or batch.overflow:
            try:
                await self._on_batch(batch)
            except Exception:
                log.exception("sync of a batch failed")
        return Batch()

    async def flush(self) -> None:
        """Handle every change the agent has seen so far, now (end of a shell command)."""
        if not self.alive:
            return
        await self.client.fs_flush()  # its events are queued before this returns
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.client.events.put_nowait({"type": _MARK, "future": fut})
        assert self._task is not None
        await asyncio.wait({fut, self._task}, return_when=asyncio.FIRST_COMPLETED)

    async def pending(self, path: str) -> bool:
        """Whether the agent holds a change to ``path`` not delivered yet."""
        try:
            return await self.client.fs_pending(path)
        except (AgentError, AgentConnectionLost):
            return False

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()
