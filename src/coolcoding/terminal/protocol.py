"""The terminal WebSocket's message protocol (docs/API.md, "Terminal WebSocket").

Binary frames carry raw terminal bytes both ways; text frames carry JSON control messages. This
module only parses and builds messages; it knows nothing of sockets or PTYs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

TERMINAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_COLS = 1000
MAX_ROWS = 1000
MAX_CONTROL_BYTES = 4096


class ProtocolError(ValueError):
    """A malformed client control message (answered with an ``error`` message, not a close)."""


@dataclass(frozen=True)
class Resize:
    cols: int
    rows: int


@dataclass(frozen=True)
class Ping:
    pass


ClientControl = Resize | Ping


def valid_terminal_id(terminal_id: str) -> bool:
    return bool(TERMINAL_ID.match(terminal_id))


def clamp_size(cols: int, rows: int) -> tuple[int, int]:
    return max(1, min(int(cols), MAX_COLS)), max(1, min(int(rows), MAX_ROWS))


def parse_client_text(text: str) -> ClientControl:
    if len(text) > MAX_CONTROL_BYTES:
        raise ProtocolError("control message too long")
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("control message is not JSON") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("control message is not an object")
    kind = msg.get("type")
    if kind == "ping":
        return Ping()
    if kind == "resize":
        cols, rows = msg.get("cols"), msg.get("rows")
        if not (isinstance(cols, int) and isinstance(rows, int)) or isinstance(cols, bool):
            raise ProtocolError("resize needs integer cols and rows")
        return Resize(*clamp_size(cols, rows))
    raise ProtocolError(f"unknown control message type {kind!r}")


def _dump(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


def ready(terminal_id: str, reattached: bool, replay_bytes: int = 0) -> str:
    """``replay_bytes``: the length of the scrollback replay, the output that follows at once;
    the client ignores what its emulator answers to that output (it is not the user typing)."""
    return _dump(
        {
            "type": "ready",
            "terminal_id": terminal_id,
            "reattached": reattached,
            "replay_bytes": replay_bytes,
        }
    )


def command(command: str, exit_code: int | None, cwd: str | None, duration_ms: float) -> str:
    return _dump(
        {
            "type": "command",
            "command": command,
            "exit_code": exit_code,
            "cwd": cwd,
            "duration_ms": round(duration_ms, 3),
        }
    )


def exited(code: int) -> str:
    return _dump({"type": "exit", "code": code})


def error(code: str, message: str) -> str:
    return _dump({"type": "error", "error": code, "message": message})


def pong() -> str:
    return _dump({"type": "pong"})
