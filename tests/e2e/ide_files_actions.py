"""Steps shared by the IDE file/search/preview browser tests."""

from __future__ import annotations

import struct
import zlib

from playwright.sync_api import Page


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG (a red rectangle)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def put_file(page: Page, uuid: str, path: str, body: bytes | str) -> None:
    data = body.encode() if isinstance(body, str) else body
    r = page.request.put(f"/api/workspace/{uuid}/upload/{path}", data=data)
    assert r.status in (200, 201), r.text()


def workspace_paths(page: Page, uuid: str) -> set[str]:
    items = page.request.get(f"/api/workspace/{uuid}/files").json()["items"]
    return {i["path"] for i in items}
