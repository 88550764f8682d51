"""Which terminal id maps to which PTY session, per coding session; limits and reaping.

Terminal ids are chosen by the client (coder's reconnect token): connecting to a live id
reattaches to the same shell. A session has at most ``terminal_max_per_session`` live terminals,
a user at most ``terminal_max_per_user`` over all their sessions.
A terminal nobody is attached to is closed after ``terminal_reattach_grace_s``; an exited one as
soon as its last client leaves. All of a session's terminals close when its sandbox stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from coolcoding.db.models import CodeSession
from coolcoding.errors import InvalidInput, NotFound, RateLimited
from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.host_limits import host_limit_message
from coolcoding.services.commands import CommandLog, CommandRecord
from coolcoding.services.sandboxes import SandboxManager
from coolcoding.settings import Settings
from coolcoding.terminal import protocol
from coolcoding.terminal.session import TerminalSession
from coolcoding.terminal.shell_integration import NONCE_ENV, new_nonce

if TYPE_CHECKING:
    from coolcoding.filesync.sync import SyncEngine

log = logging.getLogger(__name__)


class TerminalManager:
    def __init__(
        self,
        settings: Settings,
        sandboxes: SandboxManager,
        commands: CommandLog,
        sync: SyncEngine | None = None,
    ) -> None:
        self.settings = settings
        self.sandboxes = sandboxes
        self.commands = commands
        self.sync = sync
        self._terms: dict[str, dict[str, TerminalSession]] = {}
        self._session_ids: dict[str, int] = {}
        self._owners: dict[str, int] = {}  # session uuid -> user id
        self._opening: dict[int, int] = {}  # user id -> terminals being opened
        self._locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None
        sandboxes.before_stop.append(self.close_all)

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap())

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for uuid in list(self._terms):
            await self.close_all(uuid)

    def get(self, session_uuid: str, terminal_id: str) -> TerminalSession | None:
        return self._terms.get(session_uuid, {}).get(terminal_id)

    async def open(
        self, sess: CodeSession, terminal_id: str, cols: int, rows: int
    ) -> tuple[TerminalSession, bool]:
        """The live terminal ``terminal_id`` of the session (reattached=True), or a new shell."""
        if not protocol.valid_terminal_id(terminal_id):
            raise InvalidInput(
                "terminal id must match [A-Za-z0-9_-]{1,64}", code="invalid_terminal_id"
            )
        uuid = str(sess.uuid)
        async with self._locks.setdefault(uuid, asyncio.Lock()):
            terms = self._terms.setdefault(uuid, {})
            existing = terms.get(terminal_id)
            if existing is not None and existing.alive:
                return existing, True
            if existing is not None:
                terms.pop(terminal_id, None)
                await existing.close()
            if len(terms) >= self.settings.terminal_max_per_session:
                raise RateLimited(
                    f"at most {self.settings.terminal_max_per_session} terminals per session; "
                    "close one first",
                    code="too_many_terminals",
                )
            self._check_user_cap(sess.user_id)
            self._opening[sess.user_id] = self._opening.get(sess.user_id, 0) + 1
            try:
                return await self._open(sess, terminal_id, cols, rows)
            finally:
                n = self._opening.pop(sess.user_id, 1) - 1
                if n > 0:
                    self._opening[sess.user_id] = n

    def for_user(self, user_id: int) -> int:
        """The user's live terminals on this server, all sessions, and those being opened."""
        live = sum(len(self._terms.get(u, {})) for u, o in self._owners.items() if o == user_id)
        return live + self._opening.get(user_id, 0)

    def _check_user_cap(self, user_id: int) -> None:
        cap = self.settings.terminal_max_per_user
        if cap > 0 and self.for_user(user_id) >= cap:
            raise RateLimited(
                f"at most {cap} terminals per user, all sessions together "
                "(COOLCODING_TERMINAL_MAX_PER_USER); close one first",
                code="too_many_terminals_per_user",
                limit=cap,
                setting="terminal_max_per_user",
            )

    async def _open(
        self, sess: CodeSession, terminal_id: str, cols: int, rows: int
    ) -> tuple[TerminalSession, bool]:
        """A new shell (``open`` holds the session's lock and checked the caps)."""
        uuid = str(sess.uuid)
        terms = self._terms.setdefault(uuid, {})
        sandbox = await self.sandboxes.ensure_started(sess)
        cols, rows = protocol.clamp_size(cols, rows)
        nonce = new_nonce()
        try:
            term = await sandbox.open_terminal(cols, rows, env={NONCE_ENV: nonce})
        except OSError as exc:
            limit = host_limit_message(exc)
            if limit is None:
                raise
            raise SandboxError(
                "host_limit", f"The terminal could not open: {limit}; ask the administrator.", limit
            ) from exc
        ts = TerminalSession(
            terminal_id,
            uuid,
            term,
            nonce=nonce,
            cols=cols,
            rows=rows,
            scrollback_bytes=self.settings.terminal_scrollback_bytes,
            command_output_bytes=self.settings.terminal_command_output_bytes,
            on_command=self._on_command,
        )
        self._session_ids[uuid] = sess.id
        self._owners[uuid] = sess.user_id
        terms[terminal_id] = ts
        ts.start()
        return ts, False

    async def _on_command(self, ts: TerminalSession, rec: CommandRecord) -> None:
        """End of a shell command: sync its file changes now, then record it."""
        self.sandboxes.touch(ts.session_uuid)
        if self.sync is not None:
            try:
                await self.sync.flush(ts.session_uuid)
            except Exception:
                log.exception("sync at command end failed")
        session_id = self._session_ids.get(ts.session_uuid)
        if session_id is not None:
            await self.commands.record(session_id, rec)

    def list(self, session_uuid: str) -> list[dict[str, Any]]:
        return [
            {
                "id": tid,
                "cols": t.cols,
                "rows": t.rows,
                "alive": t.alive,
                "attached": len(t.clients),
            }
            for tid, t in sorted(self._terms.get(session_uuid, {}).items())
        ]

    async def close(self, session_uuid: str, terminal_id: str) -> None:
        ts = self._terms.get(session_uuid, {}).pop(terminal_id, None)
        if ts is None:
            raise NotFound(f"no terminal {terminal_id!r}", code="terminal_not_found")
        await ts.close()

    async def close_all(self, session_uuid: str) -> None:
        terms = self._terms.pop(session_uuid, {})
        self._session_ids.pop(session_uuid, None)
        self._owners.pop(session_uuid, None)
        for ts in terms.values():
            try:
                await ts.close()
            except Exception:
                log.exception("closing terminal %s failed", ts.terminal_id)

    def count(self) -> int:
        return sum(len(t) for t in self._terms.values())

    async def _reap(self) -> None:
        grace = self.settings.terminal_reattach_grace_s
        interval = max(0.5, min(10.0, grace / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for terms in list(self._terms.values()):
                for tid, ts in list(terms.items()):
                    detached = ts.detached_at
                    if detached is None:
                        continue
                    if not ts.alive or now - detached > grace:
                        terms.pop(tid, None)
                        try:
                            await ts.close()
                        except Exception:
                            log.exception("closing terminal %s failed", tid)
