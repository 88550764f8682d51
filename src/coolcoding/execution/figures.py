"""Figures in a run's stdout: ``plt.show()`` (``agent/plothook``) prints each figure as a frame
``FRAME_START <base64 PNG> FRAME_END``; ``FigureFilter`` cuts the frames out of the stream, so
the text around them streams on and each figure becomes a ``figure`` event of its own.

A frame is only ever shown as an image (a PNG decoded by the browser from a data URL), so a
program printing a frame of its own gains nothing but a picture in its own output. A frame that
is too large or malformed is dropped with a note.
"""

from __future__ import annotations

import base64
import binascii

FRAME_START = b"\x1e[coolcoding:figure:"
FRAME_END = b"]\x1e"
MIMES = (b"image/png",)

Piece = tuple[str, bytes | dict[str, str]]  # ("text", bytes) | ("figure", {mime, data})


class FigureFilter:
    def __init__(self, max_figure_bytes: int) -> None:
        self.max_encoded = max_figure_bytes * 4 // 3 + 4
        self._buf = b""
        self._in_frame = False
        self._dropping = False  # inside an oversized frame: discard up to its end
        self.figures = 0

    def feed(self, data: bytes) -> list[Piece]:
        self._buf += data
        out: list[Piece] = []
        while True:
            if not self._in_frame:
                i = self._buf.find(FRAME_START)
                if i < 0:
                    keep = _partial_suffix(self._buf, FRAME_START)
                    cut = len(self._buf) - keep
                    text, self._buf = self._buf[:cut], self._buf[cut:]
                    if text:
                        out.append(("text", text))
                    return out
                if i:
                    out.append(("text", self._buf[:i]))
                self._buf = self._buf[i + len(FRAME_START) :]
                self._in_frame = True
            j = self._buf.find(FRAME_END)
            if j < 0:
                if len(self._buf) > self.max_encoded + 64 and not self._dropping:
                    out.append(("text", b"[figure dropped: larger than the limit]\n"))
                    self._dropping = True
                if self._dropping:  # keep only what could begin the end marker
                    self._buf = self._buf[-(len(FRAME_END) - 1) :]
                return out
            frame, self._buf = self._buf[:j], self._buf[j + len(FRAME_END) :]
            self._in_frame = False
            if self._dropping:
                self._dropping = False
            else:
                out.append(self._figure(frame))

    def _figure(self, frame: bytes) -> Piece:
        mime, _, payload = frame.partition(b";")
        if mime not in MIMES or len(payload) > self.max_encoded:
            return ("text", b"[figure dropped: not a PNG or too large]\n")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return ("text", b"[figure dropped: malformed]\n")
        if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
            return ("text", b"[figure dropped: not a PNG]\n")
        self.figures += 1
        return ("figure", {"mime": mime.decode(), "data": payload.decode()})

    def flush(self) -> list[Piece]:
        """At the end: an unfinished frame is dropped, a held-back partial marker is text."""
        rest, self._buf = self._buf, b""
        if self._in_frame:
            self._in_frame = self._dropping = False
            return [("text", b"[figure dropped: incomplete]\n")]
        return [("text", rest)] if rest else []


def _partial_suffix(buf: bytes, marker: bytes) -> int:
    """How many bytes at the end of ``buf`` could begin ``marker`` (held back for the next chunk)."""
    for n in range(min(len(marker) - 1, len(buf)), 0, -1):
        if marker.startswith(buf[-n:]):
            return n
    return 0


# --- image files a run writes ------------------------------------------------------------------

IMAGE_MIMES = {".png": "image/png", ".svg": "image/svg+xml"}
SNAPSHOT_MAX_ENTRIES = 5000  # a larger workspace is not scanned (two listings per run)


def image_snapshot(entries: list[dict[str, object]]) -> dict[str, tuple[float, int]] | None:
    """``path -> (mtime, size)`` of the PNG/SVG files in a listing; ``None`` when too large."""
    if len(entries) > SNAPSHOT_MAX_ENTRIES:
        return None
    out: dict[str, tuple[float, int]] = {}
    for e in entries:
        path = str(e.get("path", ""))
        if e.get("type") == "file" and path.lower().endswith(tuple(IMAGE_MIMES)):
            mtime, size = e.get("mtime"), e.get("size")
            if isinstance(mtime, (int, float)) and isinstance(size, int):
                out[path] = (float(mtime), size)
    return out


def new_images(
    before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]], max_bytes: int
) -> list[str]:
    """Image files the run created or changed (not larger than ``max_bytes``), by path."""
    return sorted(
        p
        for p, (mtime, size) in after.items()
        if before.get(p) != (mtime, size) and size <= max_bytes
    )


def image_figure(path: str, data: bytes) -> dict[str, str] | None:
    """A ``figure`` event for a file: a PNG by its signature, an SVG by its root element; both
    shown as an ``<img>`` (an SVG there runs no script and loads nothing)."""
    mime = IMAGE_MIMES.get(path[path.rfind(".") :].lower())
    if mime == "image/png" and not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    if mime == "image/svg+xml" and b"<svg" not in data[:4096]:
        return None
    if mime is None:
        return None
    return {"mime": mime, "data": base64.b64encode(data).decode(), "path": path}
