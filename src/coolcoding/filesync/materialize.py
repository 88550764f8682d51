"""DB -> sandbox at start: make the sandbox's workspace directory equal to the DB (the source of
truth), writing only what differs, and return the sync engine's starting map (path -> hash)."""

from __future__ import annotations

from coolcoding.filesync.agentfs import SandboxFiles
from coolcoding.filesync.paths import conflict_name as conflict_name
from coolcoding.filesync.paths import is_inside
from coolcoding.sandbox.base import Sandbox
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService, content_hash

DIR = "/"  # the ``known`` value of a folder (never a sha256 hex digest)
_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_FILES = 500


async def materialize(
    workspace: WorkspaceService,
    ref: WorkspaceRef,
    sandbox: Sandbox,
    files: SandboxFiles,
    *,
    live: bool = False,
) -> dict[str, str]:
    """Write every DB item that is missing or different in the sandbox (compared by content
    hash, computed by its agent); delete what the DB does not have.

    ``live``: the sandbox ran on without a sync (taken over, found again) and was reconciled
    just before; its programs may still be writing. Only what it lacks is written: a file that
    differs or is not in the DB changed after the reconciliation, and its change event (the
    watcher is subscribed first) brings it to the DB; overwriting or deleting it here would lose
    it."""
    on_disk = {
        path: (info, sha)
        for path, info, sha in await files.walk(hashes=True)
        if info.type != "invalid_name"  # not addressable by name here; reported by the sync
    }
    known: dict[str, str] = {}
    batch: dict[str, bytes | None] = {}
    size = 0
    stale: list[str] = []
    async for path, typ, content in workspace.iter_files(ref):
        disk, disk_hash = on_disk.get(path) or (None, "")
        if typ == "folder":
            known[path] = DIR
            if disk is None or (not live and not disk.is_dir):
                if disk is not None:
                    stale.append(path)
                batch[path + "/"] = b""
            continue
        digest = content_hash(content)
        known[path] = digest
        if disk is not None and (live or (disk.is_file and disk_hash == digest)):
            continue
        if disk is not None and not disk.is_file:
            stale.append(path)  # a folder or link where the DB has a file
        batch[path] = content
        size += len(content)
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            await _write(sandbox, stale, batch)
            stale, batch, size = [], {}, 0
    await _write(sandbox, stale, batch)
    if live:
        return known
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
