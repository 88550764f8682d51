"""A lean path for the judge's waited submissions: ``POST /api/executions?wait=true`` and
``POST {judge0_prefix}/submissions?wait=true``, and Judge0's ``GET /submissions/{token}`` (the
routes of ``routes/executions.py`` and
``routes/judge0.py``, which stay registered for OpenAPI and every request this path does not
take). Under 20 clients of Python hello jobs, FastAPI's router walk, dependency solving, its
body and response validation cost about as much server CPU as the submit itself (py-spy of
``bench/profile_judge_wait.py``). This pure-ASGI middleware, next to ``FastFileRoutes``
(inside SecurityHeaders, RequestGuards and GZip), serves the well-formed request with the same
login, the same models (``ExecutionIn`` / ``SubmissionIn``, validated the way FastAPI does:
``json.loads`` then the model, lax), the same service calls (rate limit, queue room, wait) and
the same answer, and hands everything else to FastAPI unchanged:

- another method, path or query (native: exactly ``wait=true``; Judge0: ``wait=true`` (none
  for the GET) with optional ``base64_encoded=true|false`` and a ``fields`` that
  ``parse_fields`` accepts, each once), a ``root_path``, no token, a non-JSON content type, a body that is not JSON or that
  the model refuses: FastAPI answers (the body already read is replayed), so 422s, a missing
  login's 401 and a bad ``fields`` (answered after the job ran) are exactly FastAPI's;
- errors raised once the request is taken (401 of an unknown token, 400/413/429/503 of the
  service) are rendered by the app's own exception handlers (``fastfiles.answer``).

Off with ``COOLCODING_HTTP_FAST_EXEC_ROUTES=false``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from coolcoding.api.fastfiles import (
    Handler,
    LeanRoutes,
    answer,
    header,
    is_json,
    read_body,
    replay_body,
)
from coolcoding.api.routes import judge0
from coolcoding.api.routes.executions import job_request
from coolcoding.errors import InvalidInput
from coolcoding.execution.judge0_format import parse_fields
from coolcoding.platform import Platform
from coolcoding.schemas.executions import ExecutionIn, ExecutionOut

NATIVE_PATH = "/api/executions"
FIELDS_MAX = 2000  # the ``Fields`` query's max_length in routes/judge0.py
_BOOLS = {"true": True, "false": False}
M = TypeVar("M", bound=BaseModel)


def judge0_query(raw: bytes, *, wait: bool = True) -> tuple[bool, str | None] | None:
    """``(base64_encoded, fields)`` of a Judge0 query string (a waited submission's with
    ``wait``, else a GET's, which has no ``wait``), or None when FastAPI should read it
    (anything but the plain, canonical common case)."""
    if not raw and not wait:
        return False, None
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    query = dict(pairs)
    if len(query) != len(pairs) or query.pop("wait", None) != ("true" if wait else None):
        return None
    if not set(query) <= {"base64_encoded", "fields"}:
        return None
    b64 = _BOOLS.get(query.get("base64_encoded", "false"))
    fields = query.get("fields")
    if b64 is None:
        return None
    if fields is not None:
        if len(fields) > FIELDS_MAX:
            return None
        try:
            parse_fields(fields)
        except InvalidInput:
            return None
    return b64, fields


def parse_model(model: type[M], raw: bytes) -> M | None:
    """``raw`` as ``model`` the way FastAPI reads a JSON body, or None when it would refuse it."""
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        return None


class FastExecRoutes(LeanRoutes):
    """The lean waited judge submissions; see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        platform: Platform,
        handlers: Mapping[Any, Handler],
        cookie_name: str,
        judge0_prefix: str | None,
    ) -> None:
        super().__init__(app, platform, handlers, cookie_name)
        self.judge0_path = f"{judge0_prefix}/submissions" if judge0_prefix is not None else None
        self.judge0_get = f"{self.judge0_path}/" if self.judge0_path is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.passes(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        prefix = self.judge0_get
        if scope["method"] == "GET" and prefix is not None and path.startswith(prefix):
            await self._get(scope, receive, send, path[len(prefix) :])
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if path == NATIVE_PATH and scope.get("query_string") == b"wait=true":
            await self._native(scope, receive, send)
        elif path == self.judge0_path and (query := judge0_query(scope["query_string"])):
            await self._judge0(scope, receive, send, *query)
        else:
            await self.app(scope, receive, send)

    async def _get(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """``GET {judge0_prefix}/submissions/{name}`` (not ``/batch``, FastAPI's own route)."""
        query = judge0_query(scope["query_string"], wait=False)
        token = self._judge0_token(scope)
        if not name or "/" in name or name == "batch" or query is None or token is None:
            await self.app(scope, receive, send)
            return
        self.taken += 1
        work = self._get_judge0(token, name, *query)
        await answer(scope, receive, send, work, self.handlers)

    async def _native(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self._login_token(scope)
        if token is None or not is_json(header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        messages, raw = await read_body(receive)
        body = None if raw is None else parse_model(ExecutionIn, raw)
        if body is None:
            await self.app(scope, replay_body(messages, receive), send)
            return
        self.taken += 1
        await answer(scope, receive, send, self._submit(token, body), self.handlers)

    async def _judge0(
        self, scope: Scope, receive: Receive, send: Send, b64: bool, fields: str | None
    ) -> None:
        token = self._judge0_token(scope)
        if token is None or not is_json(header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        messages, raw = await read_body(receive)
        body = None if raw is None else parse_model(judge0.SubmissionIn, raw)
        if body is None:
            await self.app(scope, replay_body(messages, receive), send)
            return
        self.taken += 1
        work = self._submit_judge0(token, body, b64, fields)
        await answer(scope, receive, send, work, self.handlers)

    @staticmethod
    def _judge0_token(scope: Scope) -> str | None:
        """``judge0.judge0_user``: ``X-Auth-Token``, else a Bearer token."""
        raw = header(scope, b"x-auth-token")
        if not raw:
            auth = header(scope, b"authorization") or ""
            raw = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        return raw or None

    async def _submit(self, token: str, body: ExecutionIn) -> Response:
        """``routes.executions.submit`` with ``wait=true``."""
        platform = self.platform
        user = await platform.accounts.resolve_token(token)
        svc = platform.executions
        [row] = await svc.submit(user.user_id, [job_request(body)], watch=True)
        row = await svc.wait(row, svc.settings.exec_wait_max_s)
        return JSONResponse(
            ExecutionOut.of(row).model_dump(mode="json"),
            status_code=200 if row.status == "finished" else 202,
        )

    async def _submit_judge0(
        self, token: str, body: judge0.SubmissionIn, b64: bool, fields: str | None
    ) -> Response:
        """``routes.judge0``'s ``create`` with ``wait=true``."""
        platform = self.platform
        user = await platform.api_tokens.authenticate(token)
        svc = platform.executions
        [row] = await svc.submit(user, [judge0.job_request(body, b64)], watch=True)
        row = await svc.wait(row, svc.settings.exec_wait_max_s)
        out = judge0.submission_out(svc, row, parse_fields(fields), b64)
        return JSONResponse(out, status_code=201)

    async def _get_judge0(self, token: str, name: str, b64: bool, fields: str | None) -> Response:
        """``routes.judge0``'s ``get_one``."""
        platform = self.platform
        user = await platform.api_tokens.authenticate(token)
        svc = platform.executions
        row = await svc.get(user, name)
        return JSONResponse(judge0.submission_out(svc, row, parse_fields(fields), b64))
