"""One error vocabulary: a sandbox failure is a domain error, mapped to its HTTP status, JSON body
and WebSocket close code by api/errors.py like every other; its log message stays in the log."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coolcoding.api.errors import http_status, install_error_handlers, ws_close_code
from coolcoding.errors import DomainError, NotFound, SandboxError
from coolcoding.sandbox import base


def _app(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_sandbox_error_is_the_domain_error_runtimes_raise() -> None:
    assert base.SandboxError is SandboxError
    exc = SandboxError("start_timeout", "The sandbox did not start in time", "bwrap hung")
    assert isinstance(exc, DomainError)
    assert (exc.code, exc.reason, exc.user_message) == (
        "sandbox_start_timeout",
        "start_timeout",
        "The sandbox did not start in time",
    )
    assert (http_status(exc), ws_close_code(exc)) == (503, 4500)


def test_sandbox_error_answers_503_without_its_log_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exc = SandboxError("host_limit", "ask the administrator", "/sys/fs/cgroup/x: EMFILE")
    with caplog.at_level(logging.WARNING):
        r = _app(exc).get("/boom")
    assert r.status_code == 503
    assert r.json() == {"error": "sandbox_host_limit", "message": "ask the administrator"}
    assert "/sys/fs/cgroup/x: EMFILE" in caplog.text


def test_other_domain_errors_keep_their_mapping() -> None:
    r = _app(NotFound("no such session", code="session_not_found")).get("/boom")
    assert (r.status_code, r.json()["error"]) == (404, "session_not_found")
    assert ws_close_code(NotFound("x")) == 4404
