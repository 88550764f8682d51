"""Security headers on every HTTP response: API, static SPA, errors and 404s.

The Content-Security-Policy allows only this origin's scripts and connections. Monaco needs
``style-src 'unsafe-inline'`` (it sets inline styles) and workers from this origin or ``blob:``;
xterm draws on canvases and needs nothing more. Fonts and images may be ``data:`` URIs. The
framing rules (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, for older browsers) stop
clickjacking; ``nosniff`` stops a file served as text being run as a script; the Referrer-Policy
keeps session URLs out of other sites' logs. Swagger UI and ReDoc (/docs, /redoc) load from a CDN
with an inline script, so those two pages get a policy that allows exactly that.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
_COMMON = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
DOCS_PATHS = ("/docs", "/redoc")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers a response to ``path`` carries."""
    csp = DOCS_CSP if path.startswith(DOCS_PATHS) else CSP
    return [(b"content-security-policy", csp.encode()), *_COMMON]


class SecurityHeaders:
    """ASGI middleware adding ``security_headers`` unless the app already set one of them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
