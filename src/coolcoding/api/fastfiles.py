"""A lean path for the two hottest routes: read and save of one workspace file.

``GET /api/workspace/{session_uuid}/file/{path}`` and ``POST`` of the same path (the routes of
``routes/workspace.py``, which stay registered: OpenAPI, the access-policy test and every request
this path does not take go through them). FastAPI's router walk, dependency solving and pydantic
validation cost about as much CPU as the read or save itself (py-spy under the save/read load);
this pure-ASGI middleware, the innermost of ours (inside SecurityHeaders, RequestGuards and GZip),
serves the common, well-formed request with the same services, the same role check and the same
response, and hands everything else to FastAPI unchanged:

- anything but a plain ``GET`` without a query string or a ``POST`` whose body is a JSON object
  that ``SaveIn`` accepts without coercion (``content`` a string, ``encoding`` one of the two,
  ``base_version`` absent, null or an int in range), a path outside 1..max_path_bytes
  characters, no token, a ``root_path``: FastAPI answers (a body already read is replayed), so
  validation errors (422) and a missing login (401) are exactly FastAPI's;
- errors raised once the request is taken (401 of an unknown token, 403/404 of the access check,
  400/409/413 of the service) are rendered by the app's own exception handlers, looked up the way
  Starlette's ``ExceptionMiddleware`` does; an exception without a handler propagates as it would.

Off with ``COOLCODING_HTTP_FAST_FILE_ROUTES=false``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coolcoding.api.routes.workspace import file_response, save_response
from coolcoding.filesync.paths import DEFAULT_RULES
from coolcoding.platform import Platform
from coolcoding.schemas.limits import INT32_MAX
from coolcoding.services.access import Role

# The routes' own pattern (Starlette's ``str`` convertor, then ``anypath``); a test checks that it
# equals the compiled pattern of both routes.
FILE_ROUTE = re.compile(r"^/api/workspace/(?P<session_uuid>[^/]+)/file/(?P<path>[\s\S]*)$")
_ENCODINGS = ("utf-8", "base64")
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse the body as JSON and nothing else (no or a JSON media type)."""
    if content_type is None:
        return True
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def save_body(raw: bytes) -> tuple[str, str, int | None] | None:
    """``(content, encoding, base_version)`` when ``SaveIn`` accepts ``raw`` as is, else None."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if type(body) is not dict:
        return None
    content = body.get("content")
    encoding = body.get("encoding", "utf-8")
    base_version = body.get("base_version")
    if type(content) is not str or encoding not in _ENCODINGS:
        return None
    if base_version is not None and (
        type(base_version) is not int or not 0 <= base_version <= INT32_MAX
    ):
        return None
    return content, encoding, base_version


def login_token(scope: Scope, cookie_name: str) -> str | None:
    """``deps.token_from``: a Bearer token, else the login cookie."""
    auth = header(scope, b"authorization")
    if auth is not None and auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    cookie = header(scope, b"cookie")
    if not cookie:
        return None
    return cookie_parser(cookie).get(cookie_name) or None


class LeanRoutes:
    """What the lean paths share: the app behind them, the platform, the app's
    exception handlers (the dict FastAPI fills; read at request time) and the
    login cookie's name."""

    def __init__(
        self,
        app: ASGIApp,
        platform: Platform,
        handlers: Mapping[Any, Handler],
        cookie_name: str,
    ) -> None:
        self.app = app
        self.platform = platform
        self.handlers = handlers
        self.cookie_name = cookie_name
        self.taken = 0  # requests this path answered (the tests check which path answered)

    @staticmethod
    def passes(scope: Scope) -> bool:
        """True where the request is not plain HTTP at the root: FastAPI's."""
        return scope["type"] != "http" or bool(scope.get("root_path"))

    def _login_token(self, scope: Scope) -> str | None:
        return login_token(scope, self.cookie_name)


class FastFileRoutes(LeanRoutes):
    """The lean read/save of one file; see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        platform: Platform,
        handlers: Mapping[Any, Handler],
        cookie_name: str,
    ) -> None:
        super().__init__(app, platform, handlers, cookie_name)
        self.max_path = DEFAULT_RULES.max_path_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.passes(scope):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        match = FILE_ROUTE.match(scope["path"]) if method in ("GET", "POST") else None
        if match is None:
            await self.app(scope, receive, send)
            return
        uuid, path = match.group("session_uuid", "path")
        token = self._login_token(scope)
        if token is None or not 1 <= len(path) <= self.max_path:
            await self.app(scope, receive, send)
            return
        if method == "GET":
            if scope.get("query_string"):
                await self.app(scope, receive, send)
                return
            await self._answer(scope, receive, send, self._read(token, uuid, path))
            return
        if not is_json(header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        messages, raw = await read_body(receive)
        parsed = None if raw is None else save_body(raw)
        if parsed is None:
            await self.app(scope, replay_body(messages, receive), send)
            return
        content, encoding, base_version = parsed
        await self._answer(
            scope,
            receive,
            send,
            self._save(token, uuid, path, content, encoding, base_version),
        )

    async def _read(self, token: str, uuid: str, path: str) -> Response:
        platform = self.platform
        user = await platform.accounts.resolve_token(token)
        ref = (await platform.access.require(user.user_id, uuid, Role.VIEWER)).ref
        info, content = await platform.workspace.read(ref, path)
        return file_response(info, content, raw=False)

    async def _save(
        self,
        token: str,
        uuid: str,
        path: str,
        content: str,
        encoding: str,
        base_version: int | None,
    ) -> Response:
        platform = self.platform
        user = await platform.accounts.resolve_token(token)
        ref = (await platform.access.require(user.user_id, uuid, Role.EDITOR)).ref
        return await save_response(platform, ref, user, path, content, encoding, base_version)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, work: Awaitable[Response]
    ) -> None:
        self.taken += 1
        await answer(scope, receive, send, work, self.handlers)


async def answer(
    scope: Scope,
    receive: Receive,
    send: Send,
    work: Awaitable[Response],
    handlers: Mapping[Any, Handler],
) -> None:
    """Send ``work``'s response, or what the app's handler of its exception answers."""
    try:
        response = await work
    except Exception as exc:
        handler = exception_handler(handlers, exc)
        if handler is None:
            raise
        made = handler(Request(scope, receive), exc)
        response = await made if inspect.isawaitable(made) else made
    await response(scope, receive, send)


def exception_handler(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    """The handler ``ExceptionMiddleware`` would pick (not the 500 catch-all, which is
    ``ServerErrorMiddleware``'s, outside)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


async def read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages as read, and its whole body (None when it did not arrive)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            # a disconnect (or RequestGuards' 413): FastAPI's own handling
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def replay_body(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
