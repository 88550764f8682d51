"""Liveness/readiness: reports the database's state."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from coolcoding import __version__
from coolcoding.api.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get(
    "/api/health/",
    responses={503: {"description": "The database is unreachable (`status`: `degraded`)"}},
)
@router.get("/api/health", include_in_schema=False)
async def health(platform: PlatformDep) -> JSONResponse:
    t0 = time.perf_counter()
    db: dict[str, object] = {"dialect": platform.db.engine.dialect.name}
    try:
        async with platform.db.session() as s:
            await s.execute(text("SELECT 1"))
        db.update(status="ok", latency_ms=round((time.perf_counter() - t0) * 1000, 2))
    except Exception as exc:
        db.update(status="error", error=type(exc).__name__)
    ok = db["status"] == "ok"
    body = {"status": "ok" if ok else "degraded", "version": __version__, "database": db}
    return JSONResponse(body, status_code=200 if ok else 503)
