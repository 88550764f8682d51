"""Serves the built single-page app at ``/`` with client-side routes falling back to index.html."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from coolcoding.api.errors import error_body

_PACKAGE = Path(__file__).resolve().parents[1]


def find_static_dir(configured: Path | None) -> Path | None:
    candidates = [configured, _PACKAGE / "static", _PACKAGE.parents[1] / "web" / "dist"]
    for c in candidates:
        if c is not None and (c / "index.html").is_file():
            return c.resolve()
    return None


def mount_spa(app: FastAPI, static_dir: Path | None) -> None:
    @app.get("/{full_path:path}", include_in_schema=False)
    async def spa(full_path: str, request: Request) -> Response:
        if full_path.startswith(("api/", "ws")):
            return JSONResponse(
                error_body("not_found", f"no route {request.url.path}"), status_code=404
            )
        if static_dir is None:
            return JSONResponse(
                error_body(
                    "no_frontend", "the web app is not built: run scripts/run.sh (it builds web/)"
                ),
                status_code=404,
            )
        candidate = (static_dir / full_path).resolve()
        if full_path and candidate.is_file() and candidate.is_relative_to(static_dir):
            # Hashed asset names never change content: cache them for a year.
            cache = (
                "public, max-age=31536000, immutable"
                if "/assets/" in f"/{full_path}"
                else "no-cache"
            )
            return FileResponse(candidate, headers={"Cache-Control": cache})
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})
