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
