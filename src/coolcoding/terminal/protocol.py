"""The terminal WebSocket's message protocol (docs/API.md, "Terminal WebSocket").

Binary frames carry raw terminal bytes both ways; text frames carry JSON control messages. This
module only parses and builds messages (from the models in ``schemas/ws.py``); it knows nothing
of sockets or PTYs.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from coolcoding.schemas.ws import (
    Ping,
    Pong,
    TerminalCommand,
    TerminalError,
    TerminalExit,
    TerminalReady,
    TerminalResize,
)

TERMINAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_COLS = 1000
MAX_ROWS = 1000
MAX_CONTROL_BYTES = 4096


class ProtocolError(ValueError):
    """A malformed client control message (answered with an ``error`` message, not a close)."""


# The client's control messages (schemas/ws.py defines every message of this socket).
Resize = TerminalResize
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
        if not (isinstance(cols, int) and isinstance(rows, int)) or bool in (
            type(cols),
            type(rows),
        ):
            raise ProtocolError("resize needs integer cols and rows")
        cols, rows = clamp_size(cols, rows)
        return Resize(cols=cols, rows=rows)
    raise ProtocolError(f"unknown control message type {kind!r}")


def ready(
    terminal_id: str, reattached: bool, replay_bytes: int = 0, *, read_only: bool = False
) -> str:
    """``replay_bytes``: the length of the scrollback replay, the output that follows at once;
    the client ignores what its emulator answers to that output (it is not the user typing)."""
    return TerminalReady(
        terminal_id=terminal_id,
        reattached=reattached,
        replay_bytes=replay_bytes,
        read_only=read_only,
    ).as_json()


def command(command: str, exit_code: int | None, cwd: str | None, duration_ms: float) -> str:
    return TerminalCommand(
        command=command, exit_code=exit_code, cwd=cwd, duration_ms=round(duration_ms, 3)
    ).as_json()


def exited(code: int) -> str:
    return TerminalExit(code=code).as_json()


def error(code: Literal["bad_message", "read_only"], message: str) -> str:
    return TerminalError(error=code, message=message).as_json()


def pong() -> str:
    return Pong().as_json()
