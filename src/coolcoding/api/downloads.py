"""Headers of file downloads: an uploaded HTML or SVG file must never run script on the
platform's origin. ``Content-Disposition: attachment``, a Content-Type that is either inert
(text/plain, a raster image) or ``application/octet-stream``, ``nosniff``, and a
``Content-Security-Policy: sandbox`` that makes even a navigated-to response a script-less,
origin-less document."""

from __future__ import annotations

from urllib.parse import quote

DOWNLOAD_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
# Types a browser never runs as a document with script; everything else is octet-stream.
SAFE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "ico": "image/x-icon",
    "pdf": "application/pdf",
}


def download_headers(path: str, *, inline: bool = False) -> dict[str, str]:
    name = path.rsplit("/", 1)[-1]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    disposition = "inline" if inline else "attachment"
    return {
        "Content-Disposition": f'{disposition}; filename="{ascii_name}"; '
        f"filename*=UTF-8''{quote(name, safe='')}",
        "Content-Security-Policy": DOWNLOAD_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
    }


def safe_type(path: str, is_binary: bool) -> str:
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext in SAFE_TYPES:
        return SAFE_TYPES[ext]
    return "application/octet-stream" if is_binary else "text/plain; charset=utf-8"
