"""File history, snapshots, the trash and forks (docs/API.md, "History")."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from coolcoding.api.deps import (
    AdminWorkspace,
    CurrentUser,
    EditorWorkspace,
    PlatformDep,
    ViewerWorkspace,
)
from coolcoding.api.responses import AUTHED, OWNED, WRITE_OWNED, errors, merge
from coolcoding.api.routes import workspace as _workspace  # noqa: F401 (registers "anypath")
from coolcoding.errors import Conflict, Forbidden, InvalidInput, TooLarge
from coolcoding.schemas.history import (
    DiffOut,
    ForkIn,
    RestoreVersionIn,
    RestoreVersionOut,
    SnapshotFiles,
    SnapshotIn,
    SnapshotList,
    SnapshotOut,
    SnapshotRestoreOut,
    StorageOut,
    TrashRestoreOut,
    VersionContentOut,
    VersionList,
)
from coolcoding.schemas.limits import WorkspacePathParam
from coolcoding.schemas.sessions import SessionOut
from coolcoding.services.snapshots import snapshot_json

router = APIRouter(tags=["history"])
WS = "/api/workspace/{session_uuid}"
Id = Annotated[int, Path(ge=1, le=2**62)]
CHANGE = merge(WRITE_OWNED, errors(Conflict, TooLarge))


def _content_json(meta: dict[str, object], content: bytes, binary: bool) -> dict[str, object]:
    if binary:
        return {**meta, "content": base64.b64encode(content).decode("ascii"), "encoding": "base64"}
    return {**meta, "content": content.decode("utf-8"), "encoding": "utf-8"}


# --- file history ----------------------------------------------------------------------------


@router.get(f"{WS}/history", response_model=VersionList, responses=OWNED)
async def list_versions(
    ws: ViewerWorkspace,
    platform: PlatformDep,
    path: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> JSONResponse:
    """Versions newest first: of one file (``path``) or of the whole workspace (deleted files
    included: a ``kind: delete`` version marks the deletion)."""
    rows = await platform.history.versions(ws, path, limit=limit, before=before)
    return JSONResponse({"versions": [v.as_json() for v in rows]})


@router.get(f"{WS}/history/diff", response_model=DiffOut, responses=OWNED)
async def diff_versions(
    ws: ViewerWorkspace,
    platform: PlatformDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=2**62)],
    to: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> JSONResponse:
    """Both contents (for a side-by-side editor) and a unified diff; ``to`` absent: the file's
    current content."""
    return JSONResponse(await platform.history.diff(ws, from_, to))


@router.get(f"{WS}/history/{{version_id}}", response_model=VersionContentOut, responses=OWNED)
async def get_version(version_id: Id, ws: ViewerWorkspace, platform: PlatformDep) -> JSONResponse:
    info, content = await platform.history.get(ws, version_id)
    return JSONResponse(_content_json(info.as_json(), content, info.is_binary))


@router.post(
    f"{WS}/history/{{version_id}}/restore",
    response_model=RestoreVersionOut,
    responses=merge(CHANGE, errors(InvalidInput)),
)
async def restore_version(
    version_id: Id,
    body: RestoreVersionIn,
    ws: EditorWorkspace,
    user: CurrentUser,
    platform: PlatformDep,
) -> JSONResponse:
    """Write the version back as a new version (source ``restore``)."""
    out = await platform.history.restore(
        ws, version_id, to=body.to, base_version=body.base_version, author_id=user.user_id
    )
    return JSONResponse(out)


# --- snapshots -------------------------------------------------------------------------------


@router.get(f"{WS}/snapshots", response_model=SnapshotList, responses=OWNED)
async def list_snapshots(ws: ViewerWorkspace, platform: PlatformDep) -> JSONResponse:
    return JSONResponse(
        {"snapshots": [snapshot_json(s) for s in await platform.snapshots.list_snapshots(ws)]}
    )


@router.post(f"{WS}/snapshots", status_code=201, response_model=SnapshotOut, responses=WRITE_OWNED)
async def create_snapshot(
    body: SnapshotIn, ws: EditorWorkspace, platform: PlatformDep
) -> JSONResponse:
    snap = await platform.snapshots.create(ws, body.name.strip() or "Snapshot")
    return JSONResponse(snapshot_json(snap), status_code=201)


@router.get(f"{WS}/snapshots/{{snapshot_id}}/files", response_model=SnapshotFiles, responses=OWNED)
async def snapshot_files(
    snapshot_id: Id, ws: ViewerWorkspace, platform: PlatformDep
) -> JSONResponse:
    return JSONResponse({"items": await platform.snapshots.files(ws, snapshot_id)})


@router.get(
    f"{WS}/snapshots/{{snapshot_id}}/file/{{path:anypath}}",
    response_model=VersionContentOut,
    responses=merge(OWNED, errors(Conflict)),
)
async def snapshot_file(
    snapshot_id: Id, path: WorkspacePathParam, ws: ViewerWorkspace, platform: PlatformDep
) -> JSONResponse:
    meta, content = await platform.snapshots.read(ws, snapshot_id, path)
    return JSONResponse(_content_json(meta, content, bool(meta["is_binary"])))


@router.post(
    f"{WS}/snapshots/{{snapshot_id}}/restore", response_model=SnapshotRestoreOut, responses=CHANGE
)
async def restore_snapshot(
    snapshot_id: Id, ws: EditorWorkspace, user: CurrentUser, platform: PlatformDep
) -> JSONResponse:
    """Replace the workspace by the snapshot, atomically; the current state is snapshotted first
    (``safety_snapshot_id``)."""
    return JSONResponse(await platform.snapshots.restore(ws, snapshot_id, author_id=user.user_id))


@router.delete(f"{WS}/snapshots/{{snapshot_id}}", status_code=204, responses=WRITE_OWNED)
async def delete_snapshot(snapshot_id: Id, ws: AdminWorkspace, platform: PlatformDep) -> Response:
    await platform.snapshots.delete(ws, snapshot_id)
    return Response(status_code=204)


# --- trash -----------------------------------------------------------------------------------


@router.get(f"{WS}/trash", response_model=SnapshotList, responses=OWNED)
async def list_trash(ws: ViewerWorkspace, platform: PlatformDep) -> JSONResponse:
    rows = await platform.snapshots.list_snapshots(ws, trash=True)
    return JSONResponse({"snapshots": [snapshot_json(s) for s in rows]})


@router.get(f"{WS}/trash/{{entry_id}}/files", response_model=SnapshotFiles, responses=OWNED)
async def trash_files(entry_id: Id, ws: ViewerWorkspace, platform: PlatformDep) -> JSONResponse:
    return JSONResponse({"items": await platform.snapshots.files(ws, entry_id, trash=True)})


@router.post(f"{WS}/trash/{{entry_id}}/restore", response_model=TrashRestoreOut, responses=CHANGE)
async def restore_trash(entry_id: Id, ws: EditorWorkspace, platform: PlatformDep) -> JSONResponse:
    """Put a deleted file or folder back at its path (409 ``restore_target_exists`` if taken)."""
    return JSONResponse(await platform.snapshots.restore_trash(ws, entry_id))


@router.delete(f"{WS}/trash/{{entry_id}}", status_code=204, responses=WRITE_OWNED)
async def purge_trash(entry_id: Id, ws: AdminWorkspace, platform: PlatformDep) -> Response:
    await platform.snapshots.delete(ws, entry_id, trash=True)
    return Response(status_code=204)


@router.get("/api/trash", response_model=SnapshotList, responses=AUTHED)
async def list_deleted_workspaces(user: CurrentUser, platform: PlatformDep) -> JSONResponse:
    rows = await platform.snapshots.list_workspace_trash(user.user_id)
    return JSONResponse({"snapshots": [snapshot_json(s) for s in rows]})


@router.post(
    "/api/trash/{entry_id}/restore",
    status_code=201,
    response_model=SessionOut,
    responses=WRITE_OWNED,
)
async def restore_workspace(entry_id: Id, user: CurrentUser, platform: PlatformDep) -> SessionOut:
    sess = await platform.snapshots.restore_workspace(user.user_id, entry_id)
    return SessionOut.model_validate(sess)


@router.delete("/api/trash/{entry_id}", status_code=204, responses=WRITE_OWNED)
async def purge_workspace(entry_id: Id, user: CurrentUser, platform: PlatformDep) -> Response:
    await platform.snapshots.purge_workspace(user.user_id, entry_id)
    return Response(status_code=204)


# --- fork, storage ---------------------------------------------------------------------------


@router.post(
    "/api/sessions/{session_uuid}/fork",
    status_code=201,
    response_model=SessionOut,
    responses=merge(WRITE_OWNED, errors(Conflict, Forbidden)),
)
async def fork_session(
    session_uuid: str, body: ForkIn, user: CurrentUser, platform: PlatformDep
) -> SessionOut:
    """A copy of the workspace (files at their current versions) owned by the caller; a member
    needs the role of the workspace's ``fork_policy`` (403 ``forbidden_role`` otherwise)."""
    sess = await platform.snapshots.fork(
        user.user_id, session_uuid, body.name, platform.settings.max_sessions_per_user
    )
    return SessionOut.model_validate(sess)


@router.get("/api/storage", response_model=StorageOut, responses=AUTHED)
async def storage(user: CurrentUser, platform: PlatformDep) -> StorageOut:
    """Bytes stored for the caller: current files, and history counted once per content."""
    return StorageOut(**await platform.snapshots.storage(user.user_id))
