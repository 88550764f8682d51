"""The agent protocol's framing and handshake (one implementation for both sides; no I/O policy).

A stream starts with ``MAGIC`` from each side, then frames::

    length: u32 big-endian (payload bytes) | kind: u8 | channel: u32 big-endian | payload

``KIND_CONTROL`` carries one JSON object (UTF-8) on channel 0; ``KIND_DATA`` carries raw bytes
(terminal output/input, file content, exec output) on a channel, so terminal bytes are never
JSON-escaped; an empty data frame ends a channel's stream. See docs/AGENT_PROTOCOL.md.

Authentication is a challenge-response: both sides prove they hold the per-sandbox secret with an
HMAC over both nonces, so the secret never crosses the stream and a recorded exchange is useless.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"\x89CCA"  # a non-ASCII first byte: an HTTP or TLS client is refused on byte one
# 2 adds files.probe, files.swap, fs.pending, fs.flush, fs.late, the fs.conflict event,
# watcher options, ports.list and port.connect (docs/AGENT_PROTOCOL.md, "Protocol 2");
# an agent speaks both. 3 adds pty.spare (a default shell started ahead of its terminal).
# 4 adds ``typist`` to pty.attach and pty.command (who typed a command, on any replica).
PROTOCOL_VERSIONS: tuple[int, ...] = (1, 2, 3, 4)
AGENT_VERSION = "coolcoding-agent/0.1"
HEADER = struct.Struct(">IBI")
KIND_CONTROL = 1
KIND_DATA = 2
KINDS = frozenset({KIND_CONTROL, KIND_DATA})
CONTROL_CHANNEL = 0
DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
# Before authentication nothing larger than a hello/auth message is accepted.
HANDSHAKE_MAX_FRAME_BYTES = 4096
HANDSHAKE_TIMEOUT_S = 5.0
CHALLENGE_BYTES = 32
MIN_SECRET_BYTES = 16
_AUTH_LABEL = b"coolcoding-agent-auth/1"


class ProtocolError(Exception):
    """The peer broke the protocol; ``code`` says how (sent back in a ``refused``/``error``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Frame:
    kind: int
    channel: int
    payload: bytes


def encode_frame(kind: int, channel: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind, channel) + payload


def encode_control(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return HEADER.pack(len(body), KIND_CONTROL, CONTROL_CHANNEL) + body


def data_frame(channel: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), KIND_DATA, channel) + payload


async def read_magic(reader: asyncio.StreamReader) -> None:
    try:
        got = await reader.readexactly(len(MAGIC))
    except asyncio.IncompleteReadError as e:
        raise ProtocolError("bad_magic", "the stream ended before the protocol magic") from e
    if got != MAGIC:
        raise ProtocolError("bad_magic", "not the coolcoding agent protocol")


async def read_frame(reader: asyncio.StreamReader, max_payload: int) -> Frame | None:
    """The next frame, ``None`` at a clean end of stream; ``ProtocolError`` on a bad header.

    The size is checked before anything is buffered, so an oversize claim costs nothing."""
    try:
        head = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise ProtocolError("truncated", "the stream ended inside a frame header") from e
    length, kind, channel = HEADER.unpack(head)
    if kind not in KINDS:
        raise ProtocolError("bad_kind", f"unknown frame kind {kind}")
    if length > max_payload:
        raise ProtocolError("too_large", f"frame of {length} bytes > limit {max_payload}")
    if kind == KIND_CONTROL and channel != CONTROL_CHANNEL:
        raise ProtocolError("bad_channel", "control frames use channel 0")
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as e:
        raise ProtocolError("truncated", "the stream ended inside a frame") from e
    return Frame(kind, channel, payload)


class FrameParser:
    """Frames from a stream read in chunks of any size (``data_received``): one call per
    chunk instead of two awaits per frame, and no per-frame buffer shifting. The same checks as
    ``read_frame``, each before the payload is buffered."""

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished frame are held (the stream ending now truncates it)."""
        return bool(self._buf)

    def feed(self, chunk: bytes) -> list[Frame]:
        if self._buf:
            self._buf += chunk
            data: bytes | bytearray = self._buf
        else:
            data = chunk
        frames: list[Frame] = []
        pos, n, head = 0, len(data), HEADER.size
        while n - pos >= head:
            length, kind, channel = HEADER.unpack_from(data, pos)
            if kind not in KINDS:
                raise ProtocolError("bad_kind", f"unknown frame kind {kind}")
            if length > self.max_payload:
                raise ProtocolError("too_large", f"frame of {length} bytes > limit "
                                    f"{self.max_payload}")  # fmt: skip
            if kind == KIND_CONTROL and channel != CONTROL_CHANNEL:
                raise ProtocolError("bad_channel", "control frames use channel 0")
            end = pos + head + length
            if end > n:
                break
            frames.append(Frame(kind, channel, bytes(data[pos + head : end])))
            pos = end
        if data is self._buf:
            del self._buf[:pos]
        elif pos < n:
            self._buf = bytearray(data[pos:])
        return frames


def decode_control(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError("bad_json", "a control frame is not valid JSON") from e
    if not isinstance(value, dict):
        raise ProtocolError("bad_json", "a control frame must be a JSON object")
    return value


def new_challenge() -> str:
    return secrets.token_hex(CHALLENGE_BYTES)


def auth_proof(secret: bytes, role: str, agent_challenge: str, client_challenge: str) -> str:
    """HMAC-SHA256 binding the role ("client"/"agent") and both nonces: a proof cannot be
    replayed on another connection nor reflected back as the other side's."""
    msg = b"|".join(
        (_AUTH_LABEL, role.encode(), agent_challenge.encode(), client_challenge.encode())
    )
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def proof_matches(expected: str, got: object) -> bool:
    if not isinstance(got, str):
        return False
    return hmac.compare_digest(expected.encode(), got.encode("utf-8", "replace"))


def choose_version(offered: object) -> int | None:
    """The version both sides speak (the client names one of the agent's list)."""
    if isinstance(offered, int) and not isinstance(offered, bool) and offered in PROTOCOL_VERSIONS:
        return offered
    return None
