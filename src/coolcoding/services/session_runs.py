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

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, Execution, utcnow
from coolcoding.errors import Conflict, DomainError, InvalidInput, Unavailable
from coolcoding.execution.judge import JudgeResult, compile_output_text
from coolcoding.execution.languages import Language, LanguageRegistry
from coolcoding.execution.live import LiveHub, LiveOutput
from coolcoding.execution.session_run import MarkerFilter, session_run_command
from coolcoding.execution.verdicts import Verdict, classify, signal_name
from coolcoding.filesync.paths import normalize_path
from coolcoding.sandbox.base import ExecLimits, ExecResult, Sandbox, SandboxError
from coolcoding.schemas.ws import RunResult
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

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

    def limits(self, lang: Language) -> ExecLimits:
        s = self.svc.settings
        build = lang.compiled
        return ExecLimits(
            cpu_s=s.exec_default_cpu_s + (s.exec_compile_cpu_s if build else 0),
            wall_s=s.exec_default_wall_s + (s.exec_compile_wall_s if build else 0),
            output_bytes=s.exec_default_output_bytes,
        )

    async def start(
        self, user_id: int, session: CodeSession, path: str | None, stdin: str | None
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
        data = self.svc._text_limit("stdin", stdin, self.svc.settings.exec_max_stdin_bytes) or b""
        if self.sandbox_for is None:
            raise Unavailable("runs in sessions are not available", code="sandbox_unavailable")
        if self.file_exists is not None and not await self.file_exists(session, entry):
            # 409, not 404: the request's target (the session's run) exists; the file named in
            # the body does not, a state of the workspace (a 404 would say the session is gone).
            raise Conflict(f"{entry!r} does not exist in this session", code="file_not_found")
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
            source={"entry": entry},
            stdin=data,
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
        task = asyncio.get_running_loop().create_task(
            self._run(row, session, lang, entry, data, limits, live)
        )
        self._runs[session.id] = task
        task.add_done_callback(lambda t: self._forget(session.id, t))
        return row

    def _forget(self, session_id: int, task: asyncio.Task[None]) -> None:
        if self._runs.get(session_id) is task:
            del self._runs[session_id]

    async def _run(
        self,
        row: Execution,
        session: CodeSession,
        lang: Language,
        entry: str,
        stdin: bytes,
        limits: ExecLimits,
        live: LiveOutput,
    ) -> None:
        cancelled = False
        try:
            result = await self._execute(session, lang, entry, stdin, limits, live)
        except asyncio.CancelledError:
            cancelled = True
            result = JudgeResult(
                Verdict.RUNTIME_ERROR,
                "stopped: another run started in this session",
                signal=signal_mod.SIGKILL,
            )
        except SandboxError as e:
            log.warning("run %s: sandbox error %s: %s", row.uuid, e.reason, e.log_message)
            result = JudgeResult(Verdict.INTERNAL_ERROR, f"sandbox error: {e.user_message}")
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
        stdin: bytes,
        limits: ExecLimits,
        live: LiveOutput,
    ) -> JudgeResult:
        assert self.sandbox_for is not None
        cmd = session_run_command(lang, entry, heap_mb=self.svc.settings.exec_default_memory_mb)
        markers = MarkerFilter(cmd.has_build)
        async with (
            self.sandbox_for(session) as sandbox,
            sandbox.exec_stream(
                cmd.argv, stdin=stdin, limits=limits, cwd=sandbox.workspace_path, env=cmd.env
            ) as stream,
        ):
            async for kind, data in stream.chunks():
                data = markers.feed(kind, data)
                if data:
                    await live.append(kind, data)
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
