"""Public links: ``/api/public/{token}`` needs no account and only reads: the workspace's name
and tree, a file's content, the last run's output. Never a terminal, a sandbox or a write
(``fork`` links: a logged-in user forks into a workspace of their own). An unknown token is 404,
an expired or revoked one 410; requests are rate limited per client IP."""

from __future__ import annotations

import base64
import json
from typing import Annotated

from fastapi import APIRouter, Path, Request

from coolcoding.api.deps import CurrentUser, PlatformDep, client_ip
from coolcoding.api.responses import PUBLIC, WRITE, errors, merge
from coolcoding.errors import Conflict, Gone, NotFound, RateLimited, TooLarge
from coolcoding.platform import Platform
from coolcoding.schemas.limits import WorkspacePathParam
from coolcoding.schemas.sessions import SessionOut
from coolcoding.schemas.sharing import PublicFileOut, PublicRunOut, PublicWorkspaceOut
from coolcoding.services.public_links import FORK_GRANTED, OpenedLink

router = APIRouter(prefix="/api/public", tags=["public"])
Token = Annotated[str, Path(min_length=1, max_length=128)]
LINK = merge(PUBLIC, errors(NotFound, Gone, RateLimited))


async def _open(
    request: Request, platform: Platform, token: str, *, page: bool = False
) -> OpenedLink:
    limiter = platform.public_link_limiter
    key = client_ip(request) or "unknown"
    if await limiter.count(key) >= limiter.limit:
        raise RateLimited(
            "too many requests to public links; wait a minute",
            code="rate_limited",
            retry_after=int(await limiter.blocked(key)) + 1,
        )
    await limiter.hit(key)
    return await platform.public_links.open(token, count_view=page)


@router.get("/{token}", response_model=PublicWorkspaceOut, responses=LINK)
async def open_link(token: Token, request: Request, platform: PlatformDep) -> PublicWorkspaceOut:
    """The link's page: the workspace's name and file tree (counts one view)."""
    link = await _open(request, platform, token, page=True)
    items = json.loads(await platform.workspace.list_json(link.ref))["items"]
    return PublicWorkspaceOut(
        name=link.session.name,
        language=link.session.language,
        entry_file=link.session.entry_file,
        permission=link.permission,
        items=items,
    )


@router.get(
    "/{token}/file/{path:anypath}",
    response_model=PublicFileOut,
    responses=merge(LINK, errors(Conflict, TooLarge)),
)
async def link_file(
    token: Token, path: WorkspacePathParam, request: Request, platform: PlatformDep
) -> PublicFileOut:
    link = await _open(request, platform, token)
    info, content = await platform.workspace.read(link.ref, path)
    if info.type == "folder":
        raise Conflict(f"{info.path!r} is a folder", code="is_a_folder", path=info.path)
    limit = platform.settings.public_link_max_file_bytes
    if len(content) > limit:
        raise TooLarge(
            f"{info.path!r} is larger than a public link serves ({limit} bytes)",
            code="file_too_large",
            limit_bytes=limit,
        )
    if info.is_binary:
        return PublicFileOut(
            path=info.path,
            version=info.version,
            content=base64.b64encode(content).decode("ascii"),
            encoding="base64",
        )
    return PublicFileOut(
        path=info.path, version=info.version, content=content.decode("utf-8"), encoding="utf-8"
    )


@router.get("/{token}/run", response_model=PublicRunOut, responses=LINK)
async def link_last_run(token: Token, request: Request, platform: PlatformDep) -> PublicRunOut:
    """The output of the workspace's latest finished run."""
    link = await _open(request, platform, token)
    row = await platform.public_links.last_run(link.session.id)
    if row is None:
        return PublicRunOut()
    cap = platform.settings.public_link_max_run_output_chars
    out = (row.stdout or b"").decode("utf-8", "replace")
    err = (row.stderr or b"").decode("utf-8", "replace")
    return PublicRunOut(
        status=row.verdict or row.status,
        exit_code=row.exit_code,
        stdout=out[:cap],
        stderr=err[:cap],
        truncated=len(out) > cap or len(err) > cap,
        completed_at=row.completed_at,
    )


@router.post(
    "/{token}/fork",
    status_code=201,
    response_model=SessionOut,
    responses=merge(WRITE, LINK, errors(Conflict)),
)
async def fork_from_link(
    token: Token, request: Request, user: CurrentUser, platform: PlatformDep
) -> SessionOut:
    """A copy of the workspace owned by the caller (a ``fork`` link only: 403 otherwise)."""
    link = await _open(request, platform, token)
    if link.permission != "fork":
        from coolcoding.errors import Forbidden

        raise Forbidden("this link is read-only; it does not allow forking", code="link_read_only")
    grant = FORK_GRANTED.set(link.session.id)
    try:
        sess = await platform.snapshots.fork(
            user.user_id, str(link.session.uuid), None, platform.settings.max_sessions_per_user
        )
    finally:
        FORK_GRANTED.reset(grant)
    return SessionOut.model_validate(sess)
