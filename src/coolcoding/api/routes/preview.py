"""Preview of a program's port: ``/api/sessions/{uuid}/ports`` lists the ports programs of the
session listen on; ``/api/sessions/{uuid}/preview/{port}/...`` relays HTTP and WebSockets to one,
for the session's owner only (another user's request: 404, like any session of theirs).

Cross-site use is refused (403 ``cross_site``): a request a browser marks ``Sec-Fetch-Site:
cross-site`` or ``same-site``, or whose ``Origin`` is not ours, never reaches the program, so
another site can neither read the preview nor drive the program with the owner's cookie. The
platform's cookie and ``Authorization`` are not passed on to the program, nor can it set the
platform's cookie. The previewed page runs on the platform's origin (like a notebook's proxy):
it is the owner's own program, reachable by the owner alone; the page may be framed by the IDE
only (``X-Frame-Options: SAMEORIGIN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from coolcoding.api.deps import PlatformDep, ViewerAccess, ViewerSession, sandbox_part
from coolcoding.api.responses import OWNED, errors, merge
from coolcoding.api.ws.auth import authorize, close_quietly, revocable
from coolcoding.errors import BadGateway, Conflict, DomainError, Forbidden, TooLarge, Unavailable
from coolcoding.platform import Platform
from coolcoding.services.access import Role
from coolcoding.services.preview import (
    PreviewService,
    request_head,
    send_http,
)
from coolcoding.services.preview_ws import relay_websocket

router = APIRouter(prefix="/api", tags=["preview"])
Port = Annotated[int, Path(ge=1, le=65535)]
PREVIEW = "/sessions/{session_uuid}/preview/{port}"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class PortOut(BaseModel):
    port: int
    address: str
    family: str
    url: str


class PortsOut(BaseModel):
    """Ports programs of the session listen on (empty while the sandbox is stopped)."""

    ports: list[PortOut]


def preview_service(platform: Platform) -> PreviewService:
    return sandbox_part(platform, platform.preview)
    manager: Any = platform.components.get("sandboxes")
    if manager is None:
        raise Unavailable("previews need session sandboxes", code="sandbox_unavailable")
    svc = PreviewService(manager.get)
    platform.components["preview"] = svc
    platform.on_stop(svc.close)
    return svc


async def get_preview(platform: PlatformDep) -> PreviewService:
    return preview_service(platform)


Previews = Annotated[PreviewService, Depends(get_preview)]


def check_same_origin(headers: Any, own_origin: str, public_origins: list[str]) -> None:
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        raise Forbidden("previews are not available to other sites", code="cross_site")
    origin = headers.get("origin")
    allowed = {own_origin.lower(), *(o.rstrip("/").lower() for o in public_origins)}
    if origin is not None and origin.rstrip("/").lower() not in allowed:
        raise Forbidden("previews are not available to other sites", code="cross_site")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def forwarded_headers(raw: list[tuple[str, str]], cookie_name: str) -> list[tuple[str, str]]:
    """The request's headers minus the platform's credentials."""
    out = []
    for name, value in raw:
        low = name.lower()
        if low == "authorization" or low.startswith("sec-websocket"):
            continue
        if low == "cookie":
            kept = [c for c in value.split(";") if c.strip().split("=", 1)[0] != cookie_name]
            if not kept:
                continue
            value = ";".join(kept).strip()
        out.append((name, value))
    return out


def response_headers(
    upstream: list[tuple[str, str]], cookie_name: str, prefix: str
) -> dict[str, Any]:
    headers: list[tuple[str, str]] = []
    has_csp = False
    for name, value in upstream:
        low = name.lower()
        if low == "set-cookie" and re.match(rf"\s*{re.escape(cookie_name)}\s*=", value):
            continue  # the program may not replace the platform's login
        if low == "location" and value.startswith("/") and not value.startswith("//"):
            value = prefix + value  # an absolute-path redirect stays inside the preview
        if low in ("x-frame-options",):
            continue
        has_csp = has_csp or low == "content-security-policy"
        headers.append((name, value))
    headers.append(("X-Frame-Options", "SAMEORIGIN"))
    if not has_csp:  # ours would refuse the page's inline scripts; framing: the IDE only
        headers.append(("Content-Security-Policy", "frame-ancestors 'self'"))
    if not any(k.lower() == "cache-control" for k, _ in headers):
        headers.append(("Cache-Control", "no-store"))
    return {"raw": headers}


@router.get("/sessions/{session_uuid}/ports", response_model=PortsOut, responses=OWNED)
async def list_ports(session: ViewerSession, previews: Previews) -> PortsOut:
    uuid = str(session.uuid)
    ports = await previews.list_ports(uuid)
    return PortsOut(
        ports=[PortOut(**p, url=f"/api/sessions/{uuid}/preview/{p['port']}/") for p in ports]
    )


@router.api_route(
    PREVIEW + "/{path:path}",
    methods=METHODS,
    responses=merge(OWNED, errors(Conflict, Forbidden, BadGateway)),
    include_in_schema=False,
)
async def preview_http(
    request: Request, access: ViewerAccess, port: Port, path: str, previews: Previews,
    platform: PlatformDep,
) -> StreamingResponse:  # fmt: skip
    """Every member uses the running program as a visitor of it would (any method, and its
    WebSockets: ``preview_ws``); what the program allows is the program's business. Starting the
    sandbox or the program needs an editor (those routes); a public link has no preview."""
    session = await platform.sessions.load(access.ref.session_id)
    settings = platform.settings
    check_same_origin(request.headers, _own_origin(request), settings.public_origins)
    uuid = str(session.uuid)
    prefix = f"/api/sessions/{uuid}/preview/{port}"
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.preview_max_request_bytes:
            raise TooLarge("the request body is too large for the preview", code="too_large")
    target = "/" + path + (f"?{request.url.query}" if request.url.query else "")
    headers = forwarded_headers(list(request.headers.items()), settings.session_cookie_name)
    headers += [("X-Forwarded-Prefix", prefix), ("X-Forwarded-Proto", request.url.scheme),
                ("X-Forwarded-Host", request.headers.get("host", ""))]  # fmt: skip
    has_body = bool(body) or request.method in ("POST", "PUT", "PATCH")
    head = request_head(request.method, target, headers, port, len(body) if has_body else None)
    ports, client, stream = await previews.open(uuid, port)
    if platform.sandboxes is not None:
        platform.sandboxes.touch(uuid)
    try:
        upstream = await send_http(stream, head, bytes(body), request.method)
    except BaseException:
        await ports.release(client, clean=False)
        raise

    async def relay() -> AsyncIterator[bytes]:
        clean = False
        try:
            async for piece in upstream.body:
                yield piece
            await stream.write_eof()
            with contextlib.suppress(TimeoutError):  # a program that keeps it open: not reused
                clean = await asyncio.wait_for(stream.drain_to_end(), 2.0)
        finally:
            stream.forget()
            await ports.release(client, clean)

    out = StreamingResponse(relay(), status_code=upstream.status)
    out.raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
        for k, v in response_headers(upstream.headers, settings.session_cookie_name, prefix)["raw"]
    ]
    return out


@router.get(PREVIEW, include_in_schema=False)
async def preview_root(session: ViewerSession, port: Port) -> StreamingResponse:
    """``.../preview/8000`` -> ``.../preview/8000/`` (relative links resolve inside it)."""
    url = f"/api/sessions/{session.uuid}/preview/{port}/"
    return StreamingResponse(iter(()), status_code=307, headers={"Location": url})


@router.websocket(PREVIEW + "/{path:path}")
async def preview_ws(ws: WebSocket, session_uuid: str, port: int, path: str) -> None:
    """A WebSocket of the previewed program, relayed (origin checked like the terminal's)."""
    try:
        if not 0 < port < 65536:
            raise Forbidden("bad port", code="invalid_port")
        _, session, access = await authorize(ws, session_uuid, Role.VIEWER)
        platform: Platform = ws.app.state.platform
        previews = preview_service(platform)
        target = "/" + path + (f"?{ws.url.query}" if ws.url.query else "")
        client, stream = await previews.open_dedicated(str(session.uuid), port)
    except DomainError as e:
        code = {"forbidden": 4403, "not_authenticated": 4401}.get(e.code, 4404)
        if isinstance(e, Forbidden):
            code = 4403
        await close_quietly(ws, code, e.message)
        return
    try:
        async with revocable(ws, access):
            await relay_websocket(ws, stream, port, target, platform.settings.session_cookie_name)
    except WebSocketDisconnect:
        pass
    finally:
        with contextlib.suppress(Exception):
            await client.close()
