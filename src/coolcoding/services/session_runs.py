"""The Run button: run a session's file in that session's own sandbox, streaming its output.

Not queued behind judge jobs: the run uses the session's sandbox, whose cgroup already bounds
what it may take. One run per session at a time: a new run stops the previous one (what an
editor's Run button does). Output streams through ``LiveHub`` to the server-sent events and the
result is recorded like any execution (``kind = "run"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signal_mod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from coolcoding.agent.client import AgentClient, AgentError, AgentRefused
from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, Execution, utcnow
from coolcoding.errors import Conflict, DomainError, InvalidInput, Unavailable
from coolcoding.execution.agent_run import ActiveRun, execute_via_agent
from coolcoding.execution.judge import JudgeResult, compile_output_text
from coolcoding.execution.languages import Language, LanguageRegistry
from coolcoding.execution.live import LiveHub, LiveOutput
from coolcoding.execution.session_run import MarkerFilter, RunCommand, session_run_command
from coolcoding.execution.verdicts import Verdict, classify, signal_name
from coolcoding.filesync.paths import normalize_path
from coolcoding.sandbox.base import ExecLimits, ExecResult, Sandbox, SandboxError
from coolcoding.schemas.ws import RunResult
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

STOPPED = "stopped: its process group was killed (Stop)"
SessionSandbox = Callable[[CodeSession], AbstractAsyncContextManager[Sandbox]]
FileExists = Callable[[CodeSession, str], Awaitable[bool]]


class RunHost(Protocol):
    """What a session run needs of the execution service (``ExecutionService`` is one): passed
    in, so that this module does not import the service that imports it."""

    db: Database
    settings: Settings
    languages: LanguageRegistry
    live: LiveHub

    @property
    def owner(self) -> str | None: ...

    def language(self, language_id: str) -> Language: ...

    def _text_limit(self, name: str, value: str | None, maximum: int) -> bytes | None: ...

    async def _admit(self, user_id: int, n: int) -> None: ...

    async def finish(self, row: Execution, result: JudgeResult) -> Execution: ...


def result_event(row: Execution) -> dict[str, Any]:
    """The data of the ``result`` server-sent event (``schemas/ws.py``: ``status`` is the
    verdict, ``duration_ms`` the wall time)."""
    verdict = Verdict(row.verdict) if row.verdict else None
    return RunResult(
        id=str(row.uuid),
        status=verdict,
        verdict=verdict,
        message=row.message,
        exit_code=row.exit_code,
        signal=row.signal,
        signal_name=signal_name(row.signal) if row.signal else None,
        duration_ms=round(row.wall_ms) if row.wall_ms is not None else None,
        wall_ms=row.wall_ms,
        cpu_ms=row.cpu_ms,
        memory_kb=row.memory_kb,
        compile_output=row.compile_output,
    ).as_dict()


class SessionRunner:
    def __init__(self, service: RunHost) -> None:
        self.svc = service
        # Wired by the platform: how to get a session's (started) sandbox, and whether a file
        # exists in its workspace.
        self.sandbox_for: SessionSandbox | None = None
        self.file_exists: FileExists | None = None
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._active: dict[int, ActiveRun] = {}

    def limits(self, lang: Language) -> ExecLimits:
        """A session run's limits: a long wall (a server runs until stopped) and a large output
        cap; the sandbox's cgroup bounds CPU and memory. The judge's limits are not these."""
        s = self.svc.settings
        return ExecLimits(
            wall_s=min(s.session_run_wall_s, s.agent_exec_timeout_s),
            output_bytes=s.session_run_output_bytes,
        )

    def active(self, session: CodeSession) -> ActiveRun:
        run = self._active.get(session.id)
        if run is None:
            raise Conflict("no run is going on in this session", code="no_active_run")
        return run

    async def send_stdin(self, session: CodeSession, data: str, eof: bool) -> str:
        """Input typed while the program runs; ``eof`` closes its stdin (Ctrl+D)."""
        raw = data.encode()
        limit = self.svc.settings.session_run_stdin_bytes
        if len(raw) > limit:
            raise InvalidInput(f"input is larger than {limit} bytes", code="stdin_too_large")
        run = self.active(session)
        await run.send(raw, eof)
        return run.execution_id

    async def stop_run(self, session: CodeSession) -> str:
        """Stop: the program's whole process group is killed at once; the result says so."""
        run = self.active(session)
        await run.stop()
        task = self._runs.get(session.id)
        if task is not None and run.run is None:  # a run without an agent: cancel its exec
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 10.0)
        return run.execution_id

    async def start(
        self,
        user_id: int,
        session: CodeSession,
        path: str | None,
        stdin: str | None,
        stdin_path: str | None = None,
    ) -> Execution:
        raw = path or session.entry_file
        if not raw:
            raise Conflict(
                "no file to run: give a path or set the session's entry file",
                code="no_entry_file",
            )
        entry = normalize_path(raw)
        lang = self.svc.languages.by_extension(entry)
        if lang is None:
            raise InvalidInput(
                f"no language runs {entry!r} (by its extension)", code="unknown_language"
            )
        self.svc.language(lang.id)
        data = self.svc._text_limit("stdin", stdin, self.svc.settings.exec_max_stdin_bytes)
        stdin_file = normalize_path(stdin_path) if stdin_path else None
        if stdin_file is not None and data is not None:
            raise InvalidInput("give stdin or stdin_path, not both", code="stdin_conflict")
        if self.sandbox_for is None:
            raise Unavailable("runs in sessions are not available", code="sandbox_unavailable")
        if self.file_exists is not None and not await self.file_exists(session, entry):
            # 409, not 404: the request's target (the session's run) exists; the file named in
            # the body does not, a state of the workspace (a 404 would say the session is gone).
            raise Conflict(f"{entry!r} does not exist in this session", code="file_not_found")
        if (
            stdin_file is not None
            and self.file_exists is not None
            and not await self.file_exists(session, stdin_file)
        ):
            raise Conflict(f"{stdin_file!r} does not exist in this session", code="file_not_found")
        await self.svc._admit(user_id, 1)
        limits = self.limits(lang)
        row = Execution(
            user_id=user_id,
            session_id=session.id,
            kind="run",
            language=lang.id,
            status="running",
            owner=self.svc.owner,
            started_at=utcnow(),
            source={"entry": entry, **({"stdin_path": stdin_file} if stdin_file else {})},
            stdin=data or b"",
            limits={
                "cpu_s": limits.cpu_s,
                "wall_s": limits.wall_s,
                "output_bytes": limits.output_bytes,
            },
        )
        async with self.svc.db.session() as s:
            s.add(row)
            await s.commit()
        previous = self._runs.pop(session.id, None)
        if previous is not None:
            previous.cancel()
        live = self.svc.live.open(str(row.uuid))
        active = ActiveRun(str(row.uuid))
        self._active[session.id] = active
        task = asyncio.get_running_loop().create_task(
            self._run(row, session, lang, entry, (data, stdin_file), limits, live, active)
        )
        self._runs[session.id] = task
        task.add_done_callback(lambda t: self._forget(session.id, t, active))
        return row

    def _forget(self, session_id: int, task: asyncio.Task[None], active: ActiveRun) -> None:
        if self._runs.get(session_id) is task:
            del self._runs[session_id]
        if self._active.get(session_id) is active:
            del self._active[session_id]

    async def _run(
        self,
        row: Execution,
        session: CodeSession,
        lang: Language,
        entry: str,
        stdin: tuple[bytes | None, str | None],
        limits: ExecLimits,
        live: LiveOutput,
        active: ActiveRun,
    ) -> None:
        cancelled = False
        try:
            result = await self._execute(session, lang, entry, stdin, limits, live, active)
            if active.stopped and result.verdict != Verdict.COMPILATION_ERROR:
                result.message = STOPPED
        except asyncio.CancelledError:
            cancelled = True
            result = JudgeResult(
                Verdict.RUNTIME_ERROR,
                STOPPED if active.stopped else "stopped: another run started in this session",
                signal=signal_mod.SIGKILL,
            )
        except SandboxError as e:
            log.warning("run %s: sandbox error %s: %s", row.uuid, e.reason, e.log_message)
            result = JudgeResult(Verdict.INTERNAL_ERROR, f"sandbox error: {e.user_message}")
        except (ConnectionError, AgentError) as e:
            log.warning("run %s: the agent failed: %r", row.uuid, e)
            result = JudgeResult(Verdict.INTERNAL_ERROR, "the sandbox's agent did not answer")
        except DomainError as e:  # e.g. the user's cap on running sandboxes: say which
            result = JudgeResult(Verdict.INTERNAL_ERROR, e.message)
        except Exception:
            log.exception("run %s failed", row.uuid)
            result = JudgeResult(Verdict.INTERNAL_ERROR, "internal error while running")
        try:
            fresh = await self.svc.finish(row, result)
            await live.finish(result_event(fresh))
        finally:
            self.svc.live.release(str(row.uuid))
        if cancelled:
            raise asyncio.CancelledError

    async def _execute(
        self,
        session: CodeSession,
        lang: Language,
        entry: str,
        stdin: tuple[bytes | None, str | None],
        limits: ExecLimits,
        live: LiveOutput,
        active: ActiveRun,
    ) -> JudgeResult:
        assert self.sandbox_for is not None
        data, stdin_file = stdin
        cmd = session_run_command(
            lang, entry, heap_mb=self.svc.settings.exec_default_memory_mb, stdin_path=stdin_file
        )
        async with self.sandbox_for(session) as sandbox:
            client = await self._connect(sandbox)
            if client is None:
                active.stdin_open = False
                active.started.set()
                return await self._execute_exec(sandbox, cmd, data or b"", lang, limits, live)
            try:
                res, build_ok = await execute_via_agent(
                    client, cmd, cwd=sandbox.workspace_path, stdin=data, limits=limits,
                    live=live, active=active,
                    figure_bytes=self.svc.settings.session_run_figure_bytes,
                )  # fmt: skip
            finally:
                await client.close()
        return self.decide(res, lang, limits, build_ok)

    @staticmethod
    async def _connect(sandbox: Sandbox) -> AgentClient | None:
        """A connection to the sandbox's agent (one retry: a sandbox that just started may
        refuse the first); ``None`` for a runtime without an agent (a run without live input)."""
        for attempt in range(2):
            try:
                return await sandbox.connect_agent()
            except SandboxError as e:
                if e.reason == "no_agent":
                    return None
                if attempt:
                    raise
            except (ConnectionError, OSError, AgentRefused):
                if attempt:
                    raise
            await asyncio.sleep(0.2)
        return None

    async def _execute_exec(
        self,
        sandbox: Sandbox,
        cmd: RunCommand,
        stdin: bytes,
        lang: Language,
        limits: ExecLimits,
        live: LiveOutput,
    ) -> JudgeResult:
        markers = MarkerFilter(cmd.has_build)
        async with sandbox.exec_stream(
            cmd.argv, stdin=stdin, limits=limits, cwd=sandbox.workspace_path, env=cmd.env
        ) as stream:
            async for kind, chunk in stream.chunks():
                piece = markers.feed(kind, chunk)
                if piece:
                    await live.append(kind if markers.build_ok else "compile", piece)
            res = await stream.result()
        res.stdout = markers.strip(res.stdout)
        return self.decide(res, lang, limits, markers.build_ok)

    @staticmethod
    def decide(res: ExecResult, lang: Language, limits: ExecLimits, build_ok: bool) -> JudgeResult:
        if not build_ok:
            output = compile_output_text(res)
            if res.limit_hit:
                output += f"\n[compilation stopped: {res.limit_hit} limit reached]"
            out = JudgeResult(
                Verdict.COMPILATION_ERROR, "compilation failed", compile_output=output
            )
            out.wall_ms, out.cpu_ms, out.memory_kb = res.wall_ms, res.cpu_ms, res.memory_kb
            return out
        decision = classify(res, limits, oom_pattern=lang.oom_pattern)
        return JudgeResult.from_run(res, decision.verdict, decision.message)

    async def stop(self) -> None:
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
