"""The FastAPI application factory."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware

from coolcoding import __version__
from coolcoding.api.errors import install_error_handlers
from coolcoding.api.fastexec import FastExecRoutes
from coolcoding.api.fastfiles import FastFileRoutes
from coolcoding.api.guards import RequestGuards
from coolcoding.api.openapi import install_openapi
from coolcoding.api.routes import (
    api_tokens,
    executions,
    files_io,
    health,
    history,
    ide,
    judge0,
    languages,
    preview,
    public,
    sandbox,
    sessions,
    sharing,
    users,
    workspace,
)
from coolcoding.api.security_headers import SecurityHeaders
from coolcoding.api.spa import find_static_dir, mount_spa
from coolcoding.api.ws import collab as ws_collab
from coolcoding.api.ws import events as ws_events
from coolcoding.api.ws import terminal as ws_terminal
from coolcoding.platform import Platform
from coolcoding.settings import Settings, get_settings

log = logging.getLogger(__name__)
ZIP_IMPORT_PATHS = re.compile(r"^/api/(?:workspace/[^/]+/import|sessions/import)$")


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """The ASGI app; ``migrate=False``: a ``serve --workers`` child (its parent migrated)."""
    settings = settings or get_settings()
    platform = Platform(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.start(migrate=migrate)
        try:
            yield
        finally:
            await platform.stop()

    docs = settings.docs_enabled
    if docs is None:
        docs = settings.environment != "production"
    app = FastAPI(
        title="Cool Coding Platform",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/api/openapi.json" if docs else None,
    )
    app.state.platform = platform
    if settings.http_fast_file_routes:
        # Innermost of ours: the lean read/save of one file (api/fastfiles.py).
        app.add_middleware(
            FastFileRoutes,
            platform=platform,
            handlers=app.exception_handlers,
            cookie_name=settings.session_cookie_name,
        )
    if settings.http_fast_exec_routes:
        # Next to it: the lean waited judge submissions (api/fastexec.py).
        app.add_middleware(
            FastExecRoutes,
            platform=platform,
            handlers=app.exception_handlers,
            cookie_name=settings.session_cookie_name,
            judge0_prefix=settings.judge0_prefix if settings.judge0_enabled else None,
        )
    # Level 1: a 10,000-item tree (2.4 MB of JSON) compresses in ~13 ms instead of ~57 ms at
    # level 9, for 12% more bytes.
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=1)
    # base64 makes a file 4/3 larger; the rest is JSON framing.
    max_body = max(settings.max_file_bytes, settings.exec_max_stdin_bytes) * 4 // 3 + 256 * 1024
    # A judge job with test cases may carry them all (base64 in Judge0's API).
    judge_body = settings.exec_max_testcases_bytes * 4 // 3 + 256 * 1024
    judge_paths = re.compile(
        r"^(?:/api/executions(?:/batch)?|" + re.escape(settings.judge0_prefix) + r"/submissions"
        r"(?:/batch)?)/?$"
    )
    app.add_middleware(
        RequestGuards,
        max_body_bytes=max_body,
        allowed_origins=settings.public_origins,
        # zip imports stream to a temporary file and are limited there (max_zip_upload_bytes)
        large_bodies=(
            (ZIP_IMPORT_PATHS, settings.max_zip_upload_bytes),
            (judge_paths, judge_body),
        ),
    )
    # Outermost of ours: every response, 413/403 refusals of RequestGuards included.
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    for module in (
        health,
        ide,
        users,
        sessions,
        workspace,
        history,
        files_io,
        languages,
        executions,
        preview,
        sharing,
        public,
    ):
        app.include_router(module.router)
    for module in (sandbox, ws_terminal, ws_events, ws_collab):
        app.include_router(module.router)
    app.include_router(api_tokens.router)
    if settings.judge0_enabled:
        app.include_router(judge0.make_router(settings.judge0_prefix))
    judge0_root = [settings.judge0_prefix] if settings.judge0_enabled else []
    mount_spa(app, find_static_dir(settings.static_dir), judge0_root)
    install_openapi(app, settings)
    return app
