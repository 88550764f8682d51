"""Response models of a session's sandbox, terminals and command history."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SandboxStateOut(BaseModel):
    status: Literal["running", "stopped"]


class TerminalOut(BaseModel):
    id: str
    cols: int
    rows: int
    alive: bool
    attached: int = Field(description="how many WebSockets are attached to it now")
    private: bool = Field(default=False, description="only the owner lists and attaches to it")


class CommandOut(BaseModel):
    """A finished terminal command, recorded by shell integration."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    terminal_id: str
    command: str
    exit_code: int | None
    cwd: str | None
    started_at: datetime
    duration_ms: float
    output: str
    output_truncated: bool
    user_id: int | None = Field(
        default=None,
        description="who typed it: the user whose input to the terminal last preceded the "
        "command's start (None: unknown, e.g. typed through another replica)",
    )
