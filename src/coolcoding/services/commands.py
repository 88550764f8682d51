"""The terminal command history (``terminal_commands``), recorded via shell integration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from coolcoding.db.engine import Database
from coolcoding.db.models import TerminalCommand


@dataclass(frozen=True)
class CommandRecord:
    """One finished command as seen on the terminal."""

    terminal_id: str
    command: str
    exit_code: int | None
    cwd: str | None
    started_at: datetime
    duration_ms: float
    output: str
    output_truncated: bool
    user_id: int | None = None


class CommandLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, session_id: int, rec: CommandRecord) -> int:
        async with self.db.session() as s:
            row = TerminalCommand(
                session_id=session_id,
                terminal_id=rec.terminal_id,
                command=rec.command,
                exit_code=rec.exit_code,
                cwd=rec.cwd,
                started_at=rec.started_at,
                duration_ms=rec.duration_ms,
                output=rec.output,
                output_truncated=rec.output_truncated,
                user_id=rec.user_id,
            )
            s.add(row)
            await s.commit()
            return row.id

    async def recent(self, session_id: int, limit: int = 100) -> list[TerminalCommand]:
        """The latest ``limit`` commands, newest first."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(TerminalCommand)
                .where(TerminalCommand.session_id == session_id)
                .order_by(TerminalCommand.id.desc())
                .limit(max(1, min(limit, 1000)))
            )
            return list(rows.all())
