"""Who may open a WebSocket: same-origin (or a configured public origin) pages of a logged-in
user, for their own session.

Browsers send cookies with cross-site WebSocket handshakes and the same-origin policy does not
apply to WebSockets, so without the Origin check any site could drive a user's terminal
(cross-site WebSocket hijacking). A missing Origin means a non-browser client, which carries its
own credentials and is allowed.
"""

from __future__ import annotations

import contextlib

from fastapi import WebSocket
from starlette.websockets import WebSocketState

from coolcoding.api.deps import token_from
from coolcoding.api.errors import database_error
from coolcoding.db.models import CodeSession
from coolcoding.errors import Forbidden, NotAuthenticated
from coolcoding.platform import Platform
from coolcoding.services.accounts import Principal


def platform_of(ws: WebSocket) -> Platform:
    platform: Platform = ws.app.state.platform
    return platform


async def close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` unless the peer is gone already (a close reason is at most 123 bytes)."""
    if ws.client_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(code, reason.encode()[:120].decode("utf-8", "ignore"))


def own_origin(ws: WebSocket) -> str:
    scheme = "https" if ws.url.scheme == "wss" else "http"
    host = ws.headers.get("host", "")
    return f"{scheme}://{host}".lower()


def check_origin(ws: WebSocket, public_origins: list[str]) -> None:
    origin = ws.headers.get("origin")
    if origin is None:
        return
    allowed = {own_origin(ws), *(o.rstrip("/").lower() for o in public_origins)}
    if origin.rstrip("/").lower() not in allowed:
        raise Forbidden(f"origin {origin!r} may not open this WebSocket", code="bad_origin")


async def authorize(ws: WebSocket, session_uuid: str) -> tuple[Principal, CodeSession]:
    """Origin, login, ownership; raises the domain error whose close code the caller sends."""
    platform = platform_of(ws)
    check_origin(ws, platform.settings.public_origins)
    token = token_from(ws.headers, ws.cookies, platform.settings.session_cookie_name)
    if not token:
        raise NotAuthenticated("not logged in")
    try:
        principal = await platform.accounts.resolve_token(token)
        session = await platform.sessions.get_owned(principal.user_id, session_uuid, touch=True)
    except Exception as exc:
        unavailable = database_error(exc)
        if unavailable is None:
            raise
        raise unavailable from exc  # closes with 4503 like any Unavailable
    return principal, session
