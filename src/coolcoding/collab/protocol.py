"""The co-editing WebSocket's binary frames: a channel name, then one y-protocols message.

A frame is ``varString(path) + message`` where ``message`` is a standard y-protocols message
(``0`` sync: step 1 / step 2 / update, ``1`` awareness), so both sides use their library's own
sync and awareness code. ``path`` is a workspace file; the empty path is the workspace's presence
channel (awareness only: who is here and which file each has open). This module only parses and
builds frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycrdt import YMessageType, YSyncMessageType, write_var_uint

PRESENCE = ""
# A path is at most this many bytes (the workspace's own rule is stricter; this bounds parsing).
MAX_PATH_BYTES = 4096


class FrameError(ValueError):
    """A frame that is not a channel name followed by a y-protocols message."""


@dataclass(frozen=True)
class Frame:
    path: str
    kind: int  # YMessageType
    sync_kind: int | None  # YSyncMessageType for SYNC messages
    payload: bytes  # the state vector, the update or the awareness update


def read_var_uint(data: bytes, i: int) -> tuple[int, int]:
    """The lib0 variable-length unsigned integer at ``data[i:]`` and the index after it."""
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise FrameError("truncated or oversized varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def _read_bytes(data: bytes, i: int) -> tuple[bytes, int]:
    n, i = read_var_uint(data, i)
    if i + n > len(data):
        raise FrameError("a length runs past the end of the frame")
    return data[i : i + n], i + n


def parse_frame(data: bytes) -> Frame:
    raw_path, i = _read_bytes(data, 0)
    if len(raw_path) > MAX_PATH_BYTES:
        raise FrameError("the channel name is too long")
    try:
        path = raw_path.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError("the channel name is not UTF-8") from exc
    kind, i = read_var_uint(data, i)
    sync_kind: int | None = None
    if kind == YMessageType.SYNC:
        sync_kind, i = read_var_uint(data, i)
        if sync_kind not in (
            YSyncMessageType.SYNC_STEP1,
            YSyncMessageType.SYNC_STEP2,
            YSyncMessageType.SYNC_UPDATE,
        ):
            raise FrameError(f"unknown sync message {sync_kind}")
    elif kind != YMessageType.AWARENESS:
        raise FrameError(f"unknown message type {kind}")
    payload, i = _read_bytes(data, i)
    if i != len(data):
        raise FrameError("bytes after the message")
    return Frame(path, kind, sync_kind, payload)


def _prefix(path: str) -> bytes:
    raw = path.encode("utf-8")
    return write_var_uint(len(raw)) + raw


def sync_frame(path: str, sync_kind: int, payload: bytes) -> bytes:
    return (
        _prefix(path)
        + bytes([YMessageType.SYNC, sync_kind])
        + write_var_uint(len(payload))
        + payload
    )


def awareness_frame(path: str, payload: bytes) -> bytes:
    return _prefix(path) + bytes([YMessageType.AWARENESS]) + write_var_uint(len(payload)) + payload
