"""The one place where domain errors become HTTP statuses, JSON bodies and WebSocket close codes."""

from __future__ import annotations

import logging
import sqlite3
from types import TracebackType

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from coolcoding.api.security_headers import security_headers
from coolcoding.errors import (
    BadGateway,
    Conflict,
    DatabaseUnavailable,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    RateLimited,
    SandboxError,
    TooLarge,
    Unavailable,
)

log = logging.getLogger(__name__)

HTTP_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    RateLimited: 429,
    BadGateway: 502,
    Unavailable: 503,
    SandboxError: 503,
}

WS_CLOSE: dict[type[DomainError], int] = {
    NotAuthenticated: 4401,
    Forbidden: 4403,
    NotFound: 4404,
    RateLimited: 4429,
    InvalidInput: 4400,
    Conflict: 4409,
    Gone: 4410,
    Unavailable: 4503,
    SandboxError: 4500,
}

# Seconds a client is asked to wait (Retry-After) when the database is unreachable; PostgreSQL
# coming back is picked up by the next request (measured: ~0.5 s).
DB_RETRY_AFTER_S = 5
_SQLITE_UNAVAILABLE = ("unable to open database", "database is locked", "disk i/o error")
_ASYNCPG_UNAVAILABLE = (
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,  # the connection is closed / gone
)


def _from_database_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "/sqlalchemy/" in name or "/asyncpg/" in name or "/aiosqlite/" in name:
            return True
        tb = tb.tb_next
    return False


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot be reached now" (503), not a bug (500):
    connection refused/reset/timed out while the driver connects or talks, a pool checkout
    timeout, a connection SQLAlchemy found dead, PostgreSQL refusing connections, SQLite unable to
    open its file or still locked after its busy timeout."""
    e: BaseException | None = exc
    for _ in range(8):
        if e is None:
            return False
        if isinstance(e, sa_exc.TimeoutError):  # no pool connection within pool_timeout
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sqlite3.OperationalError):
            return str(e).lower().startswith(_SQLITE_UNAVAILABLE)
        if isinstance(e, _ASYNCPG_UNAVAILABLE):
            return True
        if isinstance(e, OSError) and _from_database_driver(e.__traceback__):
            return True  # ConnectionRefusedError, TimeoutError, socket.gaierror...
        nxt = e.orig if isinstance(e, sa_exc.DBAPIError) else None
        e = nxt if nxt is not None else (e.__cause__ or e.__context__)
    return False


def database_error(exc: BaseException) -> DatabaseUnavailable | None:
    """The domain error for ``exc`` when it means the database is unreachable."""
    if not database_unavailable(exc):
        return None
    return DatabaseUnavailable(
        "the database is unavailable; try again shortly", retry_after=DB_RETRY_AFTER_S
    )


def http_status(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400


def ws_close_code(exc: Exception) -> int:
    exc = database_error(exc) or exc
    if isinstance(exc, DomainError):
        for cls in type(exc).__mro__:
            if cls in WS_CLOSE:
                return WS_CLOSE[cls]
    return 4500


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": code, "message": message, **extra}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only the first route
    that matched the path, and a path often has one route per method."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status = http_status(exc)
        if status >= 500:
            log.warning("%s: %s", exc.code, exc.log_message)
        headers = {}
        if isinstance(exc, (RateLimited, Unavailable)) and "retry_after" in exc.extra:
            headers["Retry-After"] = str(int(exc.extra["retry_after"]))
        return JSONResponse(
            error_body(exc.code, exc.message, **exc.extra),
            status_code=status,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        first = fields[0] if fields else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
        return JSONResponse(
            error_body("validation_error", f"{where}: {first['msg']}", fields=fields),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}.get(
            exc.status_code, "http_error"
        )
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=headers)

    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        unavailable = database_error(exc)
        if unavailable is not None:
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            return await _domain(request, unavailable)
        log.exception("unhandled error", exc_info=exc)
        # Answered outside the middleware stack: add the headers SecurityHeaders would.
        response = JSONResponse(
            error_body("internal_error", "internal server error"), status_code=500
        )
        for name, value in security_headers(request.url.path):
            response.headers[name.decode()] = value.decode()
        return response

    # The driver's exceptions are handled inside the middleware stack (so responses still get the
    # security headers); anything else reaches the catch-all.
    for cls in (sa_exc.SQLAlchemyError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(cls, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
