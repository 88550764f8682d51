"""Who may open a WebSocket: same-origin (or a configured public origin) pages of a logged-in
user, for a session they own or are a member of with the role the socket needs (``WS_POLICY``).
Every workspace socket also registers with the access service (``revocable``) so that a
revocation or role change closes it (4403) on whichever replica it is open.

Browsers send cookies with cross-site WebSocket handshakes and the same-origin policy does not
apply to WebSockets, so without the Origin check any site could drive a user's terminal
(cross-site WebSocket hijacking). A missing Origin means a non-browser client, which carries its
own credentials and is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import WebSocket
from starlette.websockets import WebSocketState

from coolcoding.api.deps import token_from
from coolcoding.api.errors import database_error
from coolcoding.db.models import CodeSession
from coolcoding.errors import Forbidden, NotAuthenticated, NotFound
from coolcoding.platform import Platform
from coolcoding.services.access import Access, Role
from coolcoding.services.accounts import Principal

# The role each WebSocket route needs to connect (tests/integration/test_share_policy.py fails on
# a WebSocket route missing here). The terminal: viewers attach read-only, editors type.
WS_POLICY: dict[str, Role] = {
    "/api/sessions/{session_uuid}/terminals/{terminal_id}": Role.VIEWER,
    "/ws": Role.VIEWER,
    "/api/sessions/{session_uuid}/events": Role.VIEWER,
    # The running program, as a visitor uses it (HTTP too: any method, routes/preview.py).
    "/api/sessions/{session_uuid}/preview/{port}/{path:path}": Role.VIEWER,
    # Co-editing: every member sees the documents and cursors; only editors' updates apply.
    "/api/sessions/{session_uuid}/collab": Role.VIEWER,
}
REVOKED_CLOSE_CODE = 4403


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


async def authorize(
    ws: WebSocket, session_uuid: str, need: Role = Role.VIEWER
) -> tuple[Principal, CodeSession, Access]:
    """Origin, login, the role ``need``; raises the domain error whose close code the caller
    sends (4404 not a member, 4403 ``forbidden_role``)."""
    platform = platform_of(ws)
    check_origin(ws, platform.settings.public_origins)
    token = token_from(ws.headers, ws.cookies, platform.settings.session_cookie_name)
    if not token:
        raise NotAuthenticated("not logged in")
    try:
        principal = await platform.accounts.resolve_token(token)
        access = await platform.access.require(principal.user_id, session_uuid, need)
        session = await platform.sessions.load(access.ref.session_id, touch=True)
    except Exception as exc:
        unavailable = database_error(exc)
        if unavailable is None:
            raise
        raise unavailable from exc  # closes with 4503 like any Unavailable
    return principal, session, access


@contextlib.asynccontextmanager
async def revocable(
    ws: WebSocket, access: Access, *, terminal_id: str | None = None
) -> AsyncIterator[asyncio.Event]:
    """While the block runs, a change of the user's access (or the terminal turning private)
    sets the yielded event and closes the socket with 4403 and the reason. Handlers stop
    forwarding the client's messages once the event is set.

    A change between ``authorize`` and the registration would be missed: the access is checked
    once more after registering (the change dropped the cached answer, so this reads the row)."""
    platform = platform_of(ws)
    revoked = asyncio.Event()

    async def close(reason: str) -> None:
        revoked.set()
        await close_quietly(ws, REVOKED_CLOSE_CODE, reason)

    with platform.access.register_socket(
        access.ref.session_uuid, access.user_id, close, terminal_id=terminal_id
    ):
        try:
            now = await platform.access.role_of(access.user_id, access.ref.session_uuid)
            changed = now.role != access.role
            if terminal_id is not None and not changed:
                changed = not await platform.access.may_use_terminal(now, terminal_id)
        except NotFound:
            changed = True
        if changed:
            await close("your access to this workspace changed")
        yield revoked
