"""Terminals of the sessions' sandboxes, which live in each sandbox's agent: caps, commands, reaping.

Terminal ids are chosen by the client (coder's reconnect token) and are the agent's own ids, so
connecting to a live id reattaches to the same shell, from this or any later server process.
A session has at most ``terminal_max_per_session`` live terminals, a user at most
``terminal_max_per_user`` over all their sessions (counted from the agents' terminal lists).
A terminal nobody is attached to is closed after ``terminal_reattach_grace_s``; an exited one as
soon as nobody is attached. One control connection per running sandbox receives the agents'
``pty.command`` events: the command's file changes are synced, it is recorded in
``terminal_commands``, then the attached clients are told.

On a replica that does not hold the session's lease (the sandbox runs elsewhere and is reached
through its agent: ``SandboxManager.ensure_started``), the same code serves terminals; only the
holder syncs, records commands and reaps unattached terminals, the others just tell their own
attached clients about a command.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coolcoding.agent.client import AgentClient, AgentConnectionLost, AgentError
from coolcoding.db.models import CodeSession
from coolcoding.errors import InvalidInput, NotFound, RateLimited
from coolcoding.sandbox.base import Sandbox, SandboxError
from coolcoding.services.commands import CommandLog, CommandRecord
from coolcoding.services.sandboxes import SandboxManager
from coolcoding.settings import Settings
from coolcoding.terminal import protocol
from coolcoding.terminal.session import TerminalAttachment

if TYPE_CHECKING:
    from coolcoding.filesync.sync import SyncEngine

log = logging.getLogger(__name__)
MAX_COMMAND_CHARS = 64 * 1024  # an agent's event is untrusted input
INPUT_HISTORY = 64  # inputs remembered per terminal (changes of typist, not keystrokes)
# The agent stamps a command's start with its own clock (the sandbox's host): the Enter typed
# just before may be stamped a little after it here.
INPUT_CLOCK_SLACK_S = 0.05


@dataclass
class _Control:
    """This process's control connection to one sandbox's agent."""

    client: AgentClient
    session_id: int
    user_id: int
    events: asyncio.Task[None] | None = None
    detached_since: dict[str, float] = field(default_factory=dict)


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
        self._controls: dict[str, _Control] = {}
        self._attached: dict[tuple[str, str], set[TerminalAttachment]] = {}
        self._opening: dict[int, int] = {}  # user id -> terminals being opened
        self._locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None
        # (session uuid, terminal id) -> recent (wall time, user id) of input through this
        # replica: a recorded command is attributed to the last input before its start.
        self._inputs: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}
        sandboxes.before_stop.append(self.close_all)
        sandboxes.after_start.append(self._connect)
        sandboxes.on_remote_dropped.append(self._drop_control)

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap())

    async def shutdown(self) -> None:
        """Close this process's connections; the terminals keep running in the agents."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for uuid in list(self._controls):
            await self.close_all(uuid, ended=False)

    # --- control connections -----------------------------------------------------------------

    async def _connect(self, uuid: str, session_id: int, user_id: int, sandbox: Sandbox) -> None:
        """SandboxManager after-start hook: subscribe to the agent's command events."""
        old = self._controls.pop(uuid, None)
        if old is not None:
            await self._close_control(old)
        async with asyncio.timeout(self.settings.agent_connect_timeout_s * 5):
            client = await sandbox.connect_agent()
            try:
                await client.subscribe(pty=True)
            except BaseException:
                await client.close()
                raise
        control = _Control(client, session_id, user_id)
        control.events = asyncio.create_task(self._events(uuid, control))
        self._controls[uuid] = control

    async def _drop_control(self, uuid: str) -> None:
        """The remote sandbox handle was dropped: close the control connection (clients stay
        attached on their own connections until those end)."""
        control = self._controls.pop(uuid, None)
        if control is not None:
            await self._close_control(control)

    async def _control(
        self, sess: CodeSession, sandbox: Sandbox | None = None
    ) -> tuple[Sandbox, _Control]:
        uuid = str(sess.uuid)
        if sandbox is None:
            sandbox = await self.sandboxes.ensure_started(sess)
        control = self._controls.get(uuid)
        if control is None or control.events is None or control.events.done():
            await self._connect(uuid, sess.id, sess.user_id, sandbox)
            control = self._controls[uuid]
        return sandbox, control

    @staticmethod
    async def _close_control(control: _Control) -> None:
        if control.events is not None and control.events is not asyncio.current_task():
            control.events.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await control.events
        await control.client.close()

    async def _events(self, uuid: str, control: _Control) -> None:
        closed = asyncio.ensure_future(control.client.wait_closed())
        get: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                get = asyncio.ensure_future(control.client.events.get())
                done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    log.info("sandbox %s: the agent closed its control connection", uuid)
                    return
                msg = get.result()
                if msg.get("event") == "pty.command" and isinstance(msg.get("data"), dict):
                    try:
                        await self._on_command(uuid, control, _record(msg["data"]))
                    except (ValueError, TypeError) as exc:
                        log.warning("sandbox %s: a malformed command event: %s", uuid, exc)
        finally:
            closed.cancel()
            if get is not None:  # cancelled while waiting: no task left pending on the queue
                get.cancel()

    async def _on_command(self, uuid: str, control: _Control, rec: CommandRecord) -> None:
        """End of a shell command: sync its file changes now, record it, tell the clients (the
        holder of the session's lease syncs and records; every replica tells its clients)."""
        if self.sandboxes.is_running(uuid):
            self.sandboxes.touch(uuid)
            if self.sync is not None:
                try:
                    await self.sync.flush(uuid)
                except Exception:
                    log.exception("sync at command end failed")
            if not rec.typist_reported:  # an agent of protocol < 4: as seen here
                rec = dataclasses.replace(rec, user_id=self.typist(uuid, rec))
            try:
                await self.commands.record(control.session_id, rec)
            except Exception:
                log.exception("recording a command of terminal %s failed", rec.terminal_id)
        message = protocol.command(rec.command, rec.exit_code, rec.cwd, rec.duration_ms)
        for att in list(self._attached.get((uuid, rec.terminal_id), ())):
            att.notify(message)

    # --- who typed ------------------------------------------------------------------------------

    def note_input(self, att: TerminalAttachment, user_id: int) -> None:
        """``user_id`` sent input to the attachment's terminal now."""
        key = (att.session_uuid, att.terminal_id)
        seen = self._inputs.get(key)
        if seen is None:
            seen = self._inputs[key] = collections.deque(maxlen=INPUT_HISTORY)
        now = time.time()
        if seen and seen[-1][1] == user_id:
            seen[-1] = (now, user_id)  # a run of keystrokes by one user: keep its last
        else:
            seen.append((now, user_id))

    def typist(self, uuid: str, rec: CommandRecord) -> int | None:
        """The user whose input last preceded the command's start (the Enter that started it),
        as seen by this replica; ``None`` when none did here. Only for an agent that does not
        report it (protocol < 4): input through another replica is not seen here."""
        start = rec.started_at.timestamp() + INPUT_CLOCK_SLACK_S
        best: int | None = None
        for when, user_id in self._inputs.get((uuid, rec.terminal_id), ()):
            if when <= start:
                best = user_id
        return best

    # --- opening -----------------------------------------------------------------------------

    async def open(
        self, sess: CodeSession, terminal_id: str, cols: int, rows: int, *, create: bool = True,
        typist: int | None = None,
    ) -> tuple[TerminalAttachment, bool]:  # fmt: skip
        """An attachment to the live terminal ``terminal_id`` (reattached=True), or a new shell
        (``create=False``, a viewer: 404 ``terminal_not_found`` instead); ``typist``: the user
        who types through it (None: a viewer)."""
        if not protocol.valid_terminal_id(terminal_id):
            raise InvalidInput(
                "terminal id must match [A-Za-z0-9_-]{1,64}", code="invalid_terminal_id"
            )
        uuid = str(sess.uuid)
        async with self._locks.setdefault(uuid, asyncio.Lock()):
            sandbox, control = await self._control(sess)
            try:
                terms = {t["terminal_id"]: t for t in await control.client.pty_list()}
                existing = terms.get(terminal_id)
                reattached = existing is not None and bool(existing["alive"])
                if not reattached and not create:
                    raise NotFound(
                        f"no terminal {terminal_id!r}; a viewer watches open terminals only",
                        code="terminal_not_found",
                    )
                if not reattached:
                    await self._new_shell(sess, control, terms, terminal_id, cols, rows)
                att = await TerminalAttachment.open(sandbox, uuid, terminal_id, typist)
            except (AgentConnectionLost, OSError) as exc:
                raise SandboxError(
                    "agent_unreachable",
                    "The sandbox's agent does not answer; stop and start the sandbox again.",
                    f"sandbox {uuid}: {exc!r}",
                ) from exc
        self._attached.setdefault((uuid, terminal_id), set()).add(att)
        control.detached_since.pop(terminal_id, None)
        return att, reattached

    async def _new_shell(
        self, sess: CodeSession, control: _Control, terms: dict[str, Any],
        terminal_id: str, cols: int, rows: int,
    ) -> None:  # fmt: skip
        """Open ``terminal_id`` (``open`` holds the session's lock), within the caps."""
        if terminal_id in terms:  # ended: its id is taken again
            with contextlib.suppress(AgentError):
                await control.client.pty_close(terminal_id)
        live = sum(1 for t in terms.values() if t["alive"] and t["terminal_id"] != terminal_id)
        if live >= self.settings.terminal_max_per_session:
            raise RateLimited(
                f"at most {self.settings.terminal_max_per_session} terminals per session; "
                "close one first",
                code="too_many_terminals",
            )
        await self._check_user_cap(sess.user_id)
        self._opening[sess.user_id] = self._opening.get(sess.user_id, 0) + 1
        try:
            cols, rows = protocol.clamp_size(cols, rows)
            await control.client.pty_open(cols, rows, terminal_id=terminal_id)
        except AgentError as exc:
            if exc.code == "limit":
                raise RateLimited(
                    f"at most {self.settings.terminal_max_per_session} terminals per session; "
                    "close one first",
                    code="too_many_terminals",
                ) from exc
            raise SandboxError(
                "terminal_failed", f"The terminal could not open: {exc.message}", str(exc)
            ) from exc
        finally:
            n = self._opening.pop(sess.user_id, 1) - 1
            if n > 0:
                self._opening[sess.user_id] = n

    async def for_user(self, user_id: int) -> int:
        """The user's live terminals in the sandboxes this server runs, and those opening."""
        live = 0
        for control in list(self._controls.values()):
            if control.user_id == user_id:
                with contextlib.suppress(AgentError, AgentConnectionLost, OSError):
                    live += sum(1 for t in await control.client.pty_list() if t["alive"])
        return live + self._opening.get(user_id, 0)

    async def _check_user_cap(self, user_id: int) -> None:
        cap = self.settings.terminal_max_per_user
        if cap > 0 and await self.for_user(user_id) >= cap:
            raise RateLimited(
                f"at most {cap} terminals per user, all sessions together "
                "(COOLCODING_TERMINAL_MAX_PER_USER); close one first",
                code="too_many_terminals_per_user",
                limit=cap,
                setting="terminal_max_per_user",
            )

    async def detach(self, att: TerminalAttachment) -> None:
        """A client left: its connection closes; the terminal keeps running in the agent."""
        key = (att.session_uuid, att.terminal_id)
        clients = self._attached.get(key)
        if clients is not None:
            clients.discard(att)
            if not clients:
                del self._attached[key]
        await att.close()

    # --- listing, closing ----------------------------------------------------------------------

    async def _running_control(self, sess: CodeSession) -> _Control | None:
        """The control connection of the session's running sandbox (here or on another
        replica); ``None`` when it does not run (nothing is started for a listing)."""
        uuid = str(sess.uuid)
        control = self._controls.get(uuid)
        if control is not None and control.events is not None and not control.events.done():
            return control
        sandbox = await self.sandboxes.attached(sess)
        if sandbox is None:
            return None
        async with self._locks.setdefault(uuid, asyncio.Lock()):
            return (await self._control(sess, sandbox))[1]

    async def list(self, sess: CodeSession) -> list[dict[str, Any]]:
        control = await self._running_control(sess)
        if control is None:
            return []
        try:
            terms = await control.client.pty_list()
        except (AgentError, AgentConnectionLost, OSError):
            return []
        return [
            {
                "id": t["terminal_id"],
                "cols": t["cols"],
                "rows": t["rows"],
                "alive": t["alive"],
                "attached": t["attachments"],
            }
            for t in sorted(terms, key=lambda t: t["terminal_id"])
        ]

    async def close(self, sess: CodeSession, terminal_id: str) -> None:
        control = await self._running_control(sess)
        try:
            if control is None:
                raise AgentError("not_found", terminal_id)
            await control.client.pty_close(terminal_id)
        except AgentError as exc:
            raise NotFound(f"no terminal {terminal_id!r}", code="terminal_not_found") from exc

    async def close_all(self, session_uuid: str, *, ended: bool = True) -> None:
        """The sandbox stops (``ended``: its terminals die with it) or this server shuts down
        (the clients are disconnected and reattach through the next server process)."""
        for key in [k for k in self._inputs if k[0] == session_uuid]:
            self._inputs.pop(key, None)
        for key in [k for k in self._attached if k[0] == session_uuid]:
            for att in self._attached.pop(key, set()):
                if ended:
                    att.notify(protocol.exited(-1))
                att.end()
        control = self._controls.pop(session_uuid, None)
        if control is not None:
            await self._close_control(control)

    def count(self) -> int:
        """Clients attached through this process."""
        return sum(len(c) for c in self._attached.values())

    async def _reap(self) -> None:
        grace = self.settings.terminal_reattach_grace_s
        interval = max(0.5, min(10.0, grace / 4))
        while True:
            await asyncio.sleep(interval)
            for uuid, control in list(self._controls.items()):
                if not self.sandboxes.is_running(uuid):
                    continue  # the holder of its lease reaps its terminals
                try:
                    await self._reap_one(control, grace)
                except (AgentError, AgentConnectionLost, OSError):
                    log.info("sandbox %s: reaping its terminals failed", uuid, exc_info=True)

    @staticmethod
    async def _reap_one(control: _Control, grace: float) -> None:
        now = time.monotonic()
        for t in await control.client.pty_list():
            tid = t["terminal_id"]
            if t["attachments"]:
                control.detached_since.pop(tid, None)
                continue
            since = control.detached_since.setdefault(tid, now)
            if not t["alive"] or now - since > grace:
                control.detached_since.pop(tid, None)
                with contextlib.suppress(AgentError):
                    await control.client.pty_close(tid)


def _record(data: dict[str, Any]) -> CommandRecord:
    """A command record from an agent's ``pty.command`` event (untrusted: checked, bounded).

    The ``typist`` an agent of protocol 4 reports is the user id a server named when it attached
    that input; an agent is untrusted, so it is kept only if that user may type in the session
    (``CommandLog.record`` checks).
    """
    exit_code = data.get("exit_code")
    cwd = data.get("cwd")
    started = data.get("started_at")
    duration = data.get("duration_ms")
    typist = data.get("typist")
    if not isinstance(started, int | float) or not isinstance(duration, int | float):
        raise TypeError("started_at and duration_ms must be numbers")
    return CommandRecord(
        terminal_id=str(data.get("terminal_id", ""))[:64],
        command=str(data.get("command", ""))[:MAX_COMMAND_CHARS],
        exit_code=exit_code
        if isinstance(exit_code, int) and -(2**31) <= exit_code < 2**31
        else None,
        cwd=str(cwd)[:4096] if isinstance(cwd, str) else None,
        started_at=datetime.fromtimestamp(float(started), UTC),
        duration_ms=max(0.0, float(duration)),
        output=str(data.get("output", ""))[:MAX_COMMAND_CHARS],
        output_truncated=bool(data.get("output_truncated", False)),
        user_id=typist if isinstance(typist, int) and 0 < typist < 2**63 else None,
        typist_reported="typist" in data,
    )
