"""The terminal command history (``terminal_commands``), recorded via shell integration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, SessionCollaborator, TerminalCommand

TYPING_ROLES = ("editor", "admin")


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
    user_id: int | None = None  # who typed it
    typist_reported: bool = False  # ``user_id`` came from the agent (protocol 4), unchecked


class CommandLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, session_id: int, rec: CommandRecord) -> int:
        async with self.db.session() as s:
            user_id = rec.user_id
            if rec.typist_reported and user_id is not None:
                # The agent is untrusted: a user id it names must be one who may type here.
                owner = await s.scalar(
                    select(CodeSession.user_id).where(CodeSession.id == session_id)
                )
                if owner != user_id:
                    member = await s.scalar(
                        select(SessionCollaborator.id).where(
                            SessionCollaborator.session_id == session_id,
                            SessionCollaborator.user_id == user_id,
                            SessionCollaborator.status == "accepted",
                            SessionCollaborator.role.in_(TYPING_ROLES),
                        )
                    )
                    user_id = user_id if member is not None else None
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
                user_id=user_id,
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
