"""Files in and out of a workspace (upload, download, zip export/import) and search (downloads:
see api/downloads.py)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from coolcoding.api.deps import (
    CurrentUser,
    EditorWorkspace,
    PlatformDep,
    ViewerSession,
    ViewerWorkspace,
)
from coolcoding.api.downloads import download_headers, safe_type
from coolcoding.api.responses import OWNED, WRITE_OWNED, errors, merge
from coolcoding.api.routes import workspace as _registers_anypath  # noqa: F401
from coolcoding.errors import Conflict, InvalidInput, TooLarge
from coolcoding.schemas.ide import ImportOut, SearchOut
from coolcoding.schemas.limits import WorkspacePathParam
from coolcoding.schemas.workspace import ItemOut
from coolcoding.services.search import SearchQuery
from coolcoding.services.search_cursor import MAX_CURSOR_CHARS
from coolcoding.services.sessions import ref_of

router = APIRouter(prefix="/api/workspace/{session_uuid}", tags=["workspace"])
CHANGE = merge(WRITE_OWNED, errors(Conflict, TooLarge))
# The body is read as raw bytes whatever its Content-Type (browsers send application/zip).
ZIP_BODY: dict[str, Any] = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}
BINARY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}
}
ZIP_OUT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}
}


@router.get("/download/{path:anypath}", responses=merge(OWNED, errors(Conflict), BINARY))
async def download_file(
    path: WorkspacePathParam, ws: ViewerWorkspace, platform: PlatformDep
) -> Response:
    """The file as an attachment, with a Content-Type that cannot run script (see above)."""
    info, content = await platform.workspace.read(ws, path)
    if info.type == "folder":
        raise Conflict(f"{info.path!r} is a folder", code="is_a_folder", path=info.path)
    headers = download_headers(info.path)
    headers["ETag"] = f'"{info.version}"'
    return Response(content, media_type=safe_type(info.path, info.is_binary), headers=headers)


@router.put("/upload/{path:anypath}", response_model=ItemOut, responses=CHANGE)
async def upload_file(
    path: WorkspacePathParam,
    request: Request,
    ws: EditorWorkspace,
    user: CurrentUser,
    platform: PlatformDep,
) -> JSONResponse:
    """Create or replace a file with the raw request body (streamed, at most max_file_bytes;
    the workspace quota applies). Folders on the way are created."""
    limit = platform.settings.max_file_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(
            f"{path!r} is {length} bytes; the limit is {limit}",
            code="file_too_large",
            limit_bytes=limit,
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(
                f"{path!r} is larger than {limit} bytes", code="file_too_large", limit_bytes=limit
            )
        parts.append(chunk)
    content = b"".join(parts)
    for attempt in range(3):
        try:
            info, created = await platform.workspace.save_file(
                ws, path, content, source="upload", author_id=user.user_id
            )
            break
        except Conflict as exc:
            # Uploads of a folder run in parallel: two may create the same parent folder (or a
            # file) at once, and the loser of that race simply writes again.
            if exc.code != "already_exists" or attempt == 2:
                raise
    return JSONResponse(info.as_json(), status_code=201 if created else 200)


@router.get("/export.zip", responses=merge(OWNED, ZIP_OUT))
async def export_zip(session: ViewerSession, platform: PlatformDep) -> StreamingResponse:
    """The whole workspace as a zip archive, streamed (constant memory)."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in session.name) or "workspace"
    headers = download_headers(f"{name}.zip")
    # Already compressed: "identity" keeps the GZip middleware from deflating it a second time.
    headers["Content-Encoding"] = "identity"
    return StreamingResponse(
        platform.archives.export_zip(ref_of(session)),
        media_type="application/zip",
        headers=headers,
    )


@router.post(
    "/import",
    response_model=ImportOut,
    responses=merge(CHANGE, {200: {"description": "Imported"}}),
    openapi_extra={"requestBody": ZIP_BODY},
)
async def import_zip(request: Request, ws: EditorWorkspace, platform: PlatformDep) -> ImportOut:
    """Add a zip archive's files to the workspace (all or nothing; 409 if a path exists)."""
    archive = await platform.archives.spool(request.stream())
    with archive:
        result = await platform.archives.import_zip(ws, archive)
    return ImportOut(files=result.files, folders=result.folders, bytes=result.bytes)


@router.get("/search", response_model=SearchOut, responses=merge(OWNED, errors(InvalidInput)))
async def search(
    ws: ViewerWorkspace,
    platform: PlatformDep,
    # Bounded so that a query of 4-byte characters still fits the server's request line.
    q: Annotated[str, Query(min_length=1, max_length=500)],
    regex: bool = False,
    case: bool = False,
    word: bool = False,
    include: Annotated[str, Query(max_length=200)] = "",
    exclude: Annotated[str, Query(max_length=200)] = "",
    max_results: Annotated[
        int | None,
        Query(
            ge=1,
            description="Lines in this page: 1..search_max_results, default search_page_results",
        ),
    ] = None,
    after: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_CHARS, description="The previous page's `next`"),
    ] = None,
) -> Any:
    """Full-text search of the workspace's text files (from the database, with the sandbox
    stopped too), a page at a time. ``include``/``exclude``: comma-separated globs
    (``*.py, src/**``); ``after``: the ``next`` of the previous page (same query)."""
    result = await platform.search.search(
        ws,
        SearchQuery(
            q,
            regex=regex,
            case_sensitive=case,
            whole_word=word,
            include=tuple(g for g in include.split(",") if g.strip()),
            exclude=tuple(g for g in exclude.split(",") if g.strip()),
        ),
        max_results=max_results,
        after=after,
    )
    # Serialised straight with orjson: a capped search is 2,000 lines, which the response
    # model's validation and encoding took ~10 ms to re-check.
    body = orjson.dumps(
        {
            "files": [
                {
                    "path": f.path,
                    "matches": [
                        {"line": m.line, "text": m.text, "ranges": m.ranges} for m in f.matches
                    ],
                }
                for f in result.files
            ],
            "match_count": result.match_count,
            "truncated": result.truncated,
            "next": result.next,
        }
    )
    return Response(body, media_type="application/json")
