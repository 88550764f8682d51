"""ASGI guards in front of every route: request body size and cross-site request checks.

- Body size: a request larger than the limit is refused with 413 before it is read into memory
  (by Content-Length, or while streaming a chunked body).
- Cross-site requests: the login cookie is SameSite=Lax, which browsers already hold back from
  cross-site POSTs; as a second wall, a state-changing request whose Origin header names another
  site is refused with 403 (API clients with a Bearer token send no Origin and are unaffected).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def origin_allowed(origin: str, host: str, allowed: Iterable[str]) -> bool:
    """Same-origin (the Origin's host:port equals the request's Host) or explicitly allowed."""
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


class RequestGuards:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        allowed_origins: list[str],
        large_bodies: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths that take a larger body (zip imports, judge jobs with test cases), each with
        # its limit; every other path keeps ``max_body_bytes``.
        self.large_bodies = tuple(large_bodies)
        self.allowed_origins = set(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] in _UNSAFE:
            origin = headers.get("origin")
            if origin and not origin_allowed(origin, headers.get("host", ""), self.allowed_origins):
                await _reject(
                    send,
                    403,
                    "cross_site_request",
                    f"requests from origin {origin!r} are not allowed",
                )
                return
        max_body = self.max_body_bytes
        for pattern, limit in self.large_bodies:
            if pattern.match(scope["path"]):
                max_body = max(max_body, limit)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            await _reject(
                send,
                413,
                "request_too_large",
                f"request body is larger than {max_body} bytes",
            )
            return
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body and not rejected:
                    # Answer now and tell the app the client is gone; whatever it sends later
                    # is dropped by guarded_send.
                    rejected = True
                    await _reject(
                        send,
                        413,
                        "request_too_large",
                        f"request body is larger than {max_body} bytes",
                    )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)
