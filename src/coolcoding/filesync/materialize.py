"""DB -> sandbox at start: make the sandbox's workspace directory equal to the DB (the source of
truth), writing only what differs, and return the sync engine's starting map (path -> hash)."""

from __future__ import annotations

import posixpath
import stat
from datetime import UTC, datetime

from coolcoding.filesync.hostfs import WorkspaceDir
from coolcoding.filesync.paths import is_inside
from coolcoding.sandbox.base import Sandbox
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService, content_hash

DIR = "/"  # the ``known`` value of a folder (never a sha256 hex digest)
_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_FILES = 500


def conflict_name(path: str, now: datetime | None = None, attempt: int = 0) -> str:
    """``src/app.py`` -> ``src/app.conflict-20250101T120000123.py`` (same folder, same extension,
    so editors still highlight it); ``attempt`` > 0 adds ``-<attempt>`` when that name is taken."""
    now = now or datetime.now(UTC)
    head, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    if not stem:  # ".bashrc"
        stem, ext = name, ""
    stamp = now.strftime("%Y%m%dT%H%M%S%f")[:-3] + (f"-{attempt}" if attempt else "")
    new = f"{stem}.conflict-{stamp}{ext}"
    return f"{head}/{new}" if head else new


async def materialize(
    workspace: WorkspaceService, ref: WorkspaceRef, sandbox: Sandbox, wdir: WorkspaceDir
) -> dict[str, str]:
    """Write every DB item that is missing or different on disk; delete what the DB does not have."""
    on_disk = dict(wdir.walk())
    known: dict[str, str] = {}
    batch: dict[str, bytes | None] = {}
    size = 0
    stale: list[str] = []
    async for path, typ, content in workspace.iter_files(ref):
        disk = on_disk.get(path)
        if typ == "folder":
            known[path] = DIR
            if disk is None or not stat.S_ISDIR(disk.st_mode):
                if disk is not None:
                    stale.append(path)
                batch[path + "/"] = b""
            continue
        digest = content_hash(content)
        known[path] = digest
        if disk is not None and stat.S_ISREG(disk.st_mode) and disk.st_size == len(content):
            try:
                same = wdir.read(path, len(content)) == content
            except OSError:
                same = False
            if same:
                continue
        if disk is not None and not stat.S_ISREG(disk.st_mode):
            stale.append(path)  # a folder or link where the DB has a file
        batch[path] = content
        size += len(content)
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            await _write(sandbox, stale, batch)
            stale, batch, size = [], {}, 0
    await _write(sandbox, stale, batch)
    # Entries the DB does not have (deleted in the editor while the sandbox was stopped): only the
    # outermost of each removed subtree is deleted.
    extra: list[str] = []
    for path in sorted(on_disk):
        if path in known or (extra and is_inside(path, extra[-1])):
            continue
        extra.append(path)
    if extra:
        await sandbox.write_files(dict.fromkeys(extra))
    return known


async def _write(sandbox: Sandbox, stale: list[str], batch: dict[str, bytes | None]) -> None:
    if stale:
        await sandbox.write_files(dict.fromkeys(stale))
    if batch:
        await sandbox.write_files(batch)


def forget(known: dict[str, str], rel: str) -> None:
    """Forget ``rel`` and, for a folder, everything below it."""
    if known.pop(rel, None) == DIR:
        prefix = rel + "/"
        for k in [k for k in known if k.startswith(prefix)]:
            del known[k]


def remap(known: dict[str, str], src: str, dst: str) -> None:
    """Move ``src`` and everything below it to ``dst``."""
    prefix = src + "/"
    moved = {k: v for k, v in known.items() if k == src or k.startswith(prefix)}
    for k in moved:
        del known[k]
    for k, v in moved.items():
        known[dst + k[len(src) :]] = v
