"""Workspace files (seed paths ``/api/workspace/{session_uuid}/...``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.convertors import Convertor, register_url_convertor

from coolcoding.api.deps import (
    CurrentUser,
    EditorWorkspace,
    PlatformDep,
    ViewerSession,
    ViewerWorkspace,
)
from coolcoding.api.downloads import download_headers
from coolcoding.api.responses import OWNED, WRITE_OWNED, errors, merge
from coolcoding.errors import Conflict, InvalidInput, TooLarge
from coolcoding.platform import Platform
from coolcoding.schemas.limits import WorkspacePathParam
from coolcoding.schemas.workspace import (
    EnsureDefaultOut,
    FileOut,
    ItemList,
    ItemOut,
    MoveIn,
    SaveIn,
    StatusOut,
)
from coolcoding.services.accounts import Principal
from coolcoding.services.sessions import ref_of
from coolcoding.services.workspace import WorkspaceRef
from coolcoding.services.workspace_types import ItemInfo


class AnyPathConvertor(Convertor[str]):
    """Like Starlette's ``path`` but also matches control characters (e.g. an encoded newline), so
    that such a path reaches the validator and gets a clear 400 instead of a bare 404."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", AnyPathConvertor())

router = APIRouter(prefix="/api/workspace/{session_uuid}", tags=["workspace"])
CREATED: dict[int | str, dict[str, Any]] = {201: {"model": ItemOut, "description": "Created"}}
# 409: a stale base_version, a folder in the way, a target that exists; 413: file size or quota.
CHANGE = merge(WRITE_OWNED, errors(Conflict, TooLarge))


@router.get("/files", response_model=ItemList, responses=OWNED)
async def list_files(ws: ViewerWorkspace, platform: PlatformDep) -> Response:
    # Serialized by the service: a 10,000-item tree through pydantic costs several times as much.
    return Response(await platform.workspace.list_json(ws), media_type="application/json")


@router.get(
    "/file/{path:anypath}",
    response_model=FileOut,
    responses=merge(
        OWNED,
        errors(Conflict),
        {200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
    ),
)
async def read_file(
    path: WorkspacePathParam, ws: ViewerWorkspace, platform: PlatformDep, raw: bool = False
) -> Response:
    """The file's content (``?raw=true``: the bytes); 409 ``is_a_folder`` for a folder."""
    info, content = await platform.workspace.read(ws, path)
    return file_response(info, content, raw=raw)


def file_response(info: ItemInfo, content: bytes, *, raw: bool) -> Response:
    """``read_file``'s answer (also the lean path's, ``api/fastfiles.py``)."""
    if info.type == "folder":
        raise Conflict(f"{info.path!r} is a folder", code="is_a_folder", path=info.path)
    if raw:
        headers = download_headers(info.path)
        headers.update({"ETag": f'"{info.version}"', "X-Content-Version": str(info.version)})
        return Response(content, media_type="application/octet-stream", headers=headers)
    if info.is_binary:
        text, encoding = base64.b64encode(content).decode("ascii"), "base64"
    else:
        text, encoding = content.decode("utf-8"), "utf-8"
    return JSONResponse({**info.as_json(), "content": text, "encoding": encoding})


@router.post("/file/{path:anypath}", response_model=ItemOut, responses=merge(CHANGE, CREATED))
async def save_file(
    path: WorkspacePathParam,
    body: SaveIn,
    ws: EditorWorkspace,
    user: CurrentUser,
    platform: PlatformDep,
) -> JSONResponse:
    return await save_response(
        platform, ws, user, path, body.content, body.encoding, body.base_version
    )


async def save_response(
    platform: Platform,
    ws: WorkspaceRef,
    user: Principal,
    path: str,
    text: str,
    encoding: str,
    base_version: int | None,
) -> JSONResponse:
    """``save_file``'s work and answer (also the lean path's, ``api/fastfiles.py``)."""
    if encoding == "base64":
        try:
            content = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("content is not valid base64", code="invalid_content") from exc
    else:
        try:
            content = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput("content is not valid UTF-8 text", code="invalid_content") from exc
    info, created = await platform.workspace.save_file(
        ws, path, content, base_version=base_version, author_id=user.user_id
    )
    return JSONResponse(info.as_json(), status_code=201 if created else 200)


@router.delete("/file/{path:anypath}", status_code=204, responses=WRITE_OWNED)
async def delete_file(
    path: WorkspacePathParam, ws: EditorWorkspace, platform: PlatformDep
) -> Response:
    await platform.workspace.delete(ws, path)
    return Response(status_code=204)


@router.post("/folder/{path:anypath}", response_model=ItemOut, responses=merge(CHANGE, CREATED))
async def make_folder(
    path: WorkspacePathParam, ws: EditorWorkspace, platform: PlatformDep
) -> JSONResponse:
    info, created = await platform.workspace.make_folder(ws, path)
    return JSONResponse(info.as_json(), status_code=201 if created else 200)


@router.post("/move", response_model=ItemOut, responses=CHANGE)
async def move(body: MoveIn, ws: EditorWorkspace, platform: PlatformDep) -> JSONResponse:
    info = await platform.workspace.move(ws, body.from_, body.to)
    return JSONResponse(info.as_json())


@router.get("/status", response_model=StatusOut, responses=OWNED)
async def status(session: ViewerSession, platform: PlatformDep) -> StatusOut:
    count, total = await platform.workspace.stats(ref_of(session))
    sandboxes = platform.sandboxes
    disk = await sandboxes.disk_usage(str(session.uuid)) if sandboxes is not None else None
    return StatusOut(
        initialized=count > 0,
        item_count=count,
        total_bytes=total,
        sandbox_status=session.sandbox_status,
        disk_used_bytes=disk.used_bytes if disk is not None else None,
        disk_limit_bytes=disk.limit_bytes if disk is not None else None,
    )


@router.post("/ensure-default", response_model=EnsureDefaultOut, responses=CHANGE)
async def ensure_default(ws: EditorWorkspace, platform: PlatformDep) -> EnsureDefaultOut:
    """Fill an empty workspace with its language's starter template (main.py without one)."""
    if await platform.templates.apply(ws) is not None:
        return EnsureDefaultOut(created=True)
    return EnsureDefaultOut(created=await platform.workspace.ensure_default(ws))
