"""Serves the built single-page app at ``/`` with client-side routes falling back to index.html."""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from coolcoding.api.errors import error_body

_PACKAGE = Path(__file__).resolve().parents[1]


def find_static_dir(configured: Path | None) -> Path | None:
    candidates = [configured, _PACKAGE / "static", _PACKAGE.parents[1] / "web" / "dist"]
    for c in candidates:
        if c is not None and (c / "index.html").is_file():
            return c.resolve()
    return None


COMPRESSIBLE = {".js", ".mjs", ".css", ".html", ".json", ".svg", ".map", ".txt", ".ttf", ".wasm"}


class CompressedAssets:
    """Static files gzip-compressed once, at level 9, and kept in memory: the response
    middleware compresses at level 1 (fast, for API bodies), which would send the bundle bigger
    and compress the same immutable file again on every request."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[float, bytes]] = {}

    async def get(self, path: Path) -> bytes | None:
        if path.suffix not in COMPRESSIBLE:
            return None
        mtime = os.path.getmtime(path)  # noqa: ASYNC240 (a stat: microseconds, no I/O wait)
        hit = self._cache.get(path)
        if hit is None or hit[0] != mtime:
            # Off the event loop: Monaco's 2.7 MB script takes ~100 ms at level 9.
            hit = (mtime, await asyncio.to_thread(_compress, path))
            self._cache[path] = hit
        return hit[1]


def _compress(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)


async def _file_response(
    path: Path, request: Request, cache_control: str, assets: CompressedAssets
) -> Response:
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = await assets.get(path)
        if body is not None:
            return Response(
                body,
                media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                headers={
                    "Cache-Control": cache_control,
                    "Content-Encoding": "gzip",
                    "Vary": "Accept-Encoding",
                },
            )
    return FileResponse(path, headers={"Cache-Control": cache_control})


class ClientPathConvertor(Convertor[str]):
    """Any path but the API's (``/api/...``, ``/ws...``): those are not the web app's, and a path
    the API serves for other methods must answer 405 with its ``Allow``, not index.html or 404."""

    regex = r"(?!api/|ws).*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("clientpath", ClientPathConvertor())


def mount_spa(app: FastAPI, static_dir: Path | None, api_prefixes: Sequence[str] = ()) -> None:
    """``api_prefixes``: other API roots (the Judge0 API's) whose unknown paths answer the API's
    JSON 404, not the web app's index.html (a Judge0 client must never get a 200 HTML page)."""
    assets = CompressedAssets()
    prefixes = tuple(p.rstrip("/") for p in api_prefixes)

    @app.get("/{full_path:clientpath}", include_in_schema=False)
    async def spa(full_path: str, request: Request) -> Response:
        path = f"/{full_path}"
        if any(path == p or path.startswith(f"{p}/") for p in prefixes):
            raise StarletteHTTPException(status_code=404)
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
            return await _file_response(candidate, request, cache, assets)
        return await _file_response(static_dir / "index.html", request, "no-cache", assets)
