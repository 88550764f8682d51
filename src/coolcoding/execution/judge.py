"""The judge: compile and run one job in a fresh throw-away sandbox, and decide its verdict.

Each job gets its own ``Runtime.ephemeral`` sandbox (no network, its own cgroup, its own
files), removed with every process and file in it when the job ends, whatever the program did.
The compile step has its own limits (``exec_compile_*``); the run gets the job's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coolcoding.errors import InvalidInput
from coolcoding.execution.compile_cache import CompileCache, cache_key
from coolcoding.execution.dependencies import ENV as DEPS_ENV
from coolcoding.execution.dependencies import SANDBOX_DEPS, DependencyCache
from coolcoding.execution.interactive import run_interactive
from coolcoding.execution.languages import Language, LanguageRegistry, expand
from coolcoding.execution.testcases import (
    PROGRAM_CHECKERS,
    CaseOutcome,
    Checker,
    CheckerBox,
    JudgeCase,
    compare,
    summarize,
)
from coolcoding.execution.verdicts import Decision, Verdict, classify
from coolcoding.sandbox.base import ExecLimits, ExecResult, Runtime, Sandbox, SandboxError
from coolcoding.sandbox.host_limits import host_limit_message
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

LIMIT_FIELDS = ("cpu_s", "wall_s", "memory_mb", "pids", "output_bytes")
WATCHDOG_CANCEL_GRACE_S = 5.0  # how long a job the watchdog cancelled may take to unwind


def _log_late_end(task: asyncio.Future[JudgeResult]) -> None:
    """A job the watchdog gave up on finally ended (its result is dropped)."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("judge: a job stopped by the watchdog ended with %r", task.exception())


def resolve_limits(requested: Mapping[str, Any] | None, settings: Settings) -> ExecLimits:
    """The job's limits: the defaults of ``settings`` for what is not given; anything above
    the configured maxima (or not positive) is refused with a clear 400."""
    requested = dict(requested or {})
    unknown = set(requested) - set(LIMIT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown limits: {', '.join(sorted(unknown))}", code="invalid_limits")
    values: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        default = getattr(settings, f"exec_default_{name}")
        maximum = getattr(settings, f"exec_max_{name}")
        value = requested.get(name)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidInput(f"limits.{name} must be a positive number", code="invalid_limits")
        if value > maximum:
            raise InvalidInput(
                f"limits.{name}={value:g} is above this server's maximum of {maximum:g}",
                code="limit_too_high",
                limit=name,
                maximum=maximum,
            )
        values[name] = type(default)(value) if isinstance(default, int) else float(value)
    return ExecLimits(**values)


@dataclass(frozen=True)
class JudgeJob:
    language: str
    files: Mapping[str, bytes]  # workspace-relative path -> content
    entry: str
    limits: ExecLimits
    stdin: bytes = b""
    expected_output: bytes | None = None
    cache_scope: str = ""  # the compile cache's partition (the user)
    cases: Sequence[JudgeCase] | None = None  # test cases (testcases.py) instead of stdin
    checker: Checker = field(default_factory=Checker)
    stop_on_failure: bool = False
    dependencies: Sequence[str] = ()  # pinned packages (dependencies.py), validated


@dataclass
class JudgeResult:
    verdict: Verdict
    message: str | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    compile_output: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    wall_ms: float | None = None
    cpu_ms: float | None = None
    memory_kb: int | None = None
    compile_ms: float | None = None
    cached_build: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: ExecResult, verdict: Verdict, message: str | None) -> JudgeResult:
        return cls(
            verdict=verdict,
            message=message,
            stdout=run.stdout,
            stderr=run.stderr,
            exit_code=run.exit_code,
            signal=run.signal,
            wall_ms=round(run.wall_ms, 3),
            cpu_ms=round(run.cpu_ms, 3),
            memory_kb=run.memory_kb,
        )


def compile_output_text(res: ExecResult) -> str:
    text = (res.stdout + res.stderr).decode("utf-8", errors="replace")
    if res.stdout_truncated or res.stderr_truncated:
        text += "\n[compiler output truncated]"
    return text


class Judge:
    """Runs jobs; safe to call concurrently (the queue bounds how many run at once)."""

    def __init__(
        self,
        runtime: Runtime | Callable[[], Runtime] | None,
        languages: LanguageRegistry,
        settings: Settings,
    ) -> None:
        # A runtime, or a function giving it on first use (it may be registered after us).
        self._runtime = runtime
        self.languages = languages
        self.settings = settings
        self.cache = CompileCache(settings.exec_compile_cache_mb * 1024 * 1024)
        self.deps = DependencyCache(settings.data_dir / "dep-cache", None, settings)

    def runtime(self) -> Runtime:
        if isinstance(self._runtime, Runtime):
            return self._runtime
        if self._runtime is None:
            raise SandboxError("runtime_unavailable", "No sandbox runtime is configured.")
        self._runtime = self._runtime()
        return self._runtime

    def connected_execs(self) -> bool:
        """Whether the runtime can run interactive problems (``Runtime.connected_execs``)."""
        try:
            return self.runtime().connected_execs
        except SandboxError:
            return False

    def compile_limits(self) -> ExecLimits:
        s = self.settings
        return ExecLimits(
            cpu_s=s.exec_compile_cpu_s,
            wall_s=s.exec_compile_wall_s,
            memory_mb=s.exec_compile_memory_mb,
            pids=s.exec_compile_pids,
            output_bytes=s.exec_compile_output_bytes,
        )

    def language(self, language_id: str) -> Language:
        lang = self.languages.get(language_id)
        if lang is None:
            known = ", ".join(sorted(self.languages.ids()))
            raise InvalidInput(
                f"unknown language {language_id!r}; known: {known}", code="unknown_language"
            )
        return lang

    def deadline_s(self, job: JudgeJob) -> float:
        """How long a job may take in all: its wall limits (the compile step's too, for a
        compiled language) plus ``exec_watchdog_margin_s`` for the sandbox's set-up and teardown."""
        s = self.settings
        lang = self.languages.get(job.language)
        compile_s = s.exec_compile_wall_s if lang is not None and lang.compile is not None else 0
        runs = 1 if job.cases is None else max(1, len(job.cases))
        wall = job.limits.wall_s or s.exec_default_wall_s
        if job.checker.kind == "program":  # its compile step, and its run per case
            wall += s.exec_checker_wall_s
            compile_s *= 2
        elif job.checker.kind == "interactive":  # its compile step; it runs with the program
            wall += s.exec_interactor_grace_s
            compile_s *= 2
        if job.dependencies:
            compile_s += s.exec_deps_install_timeout_s + 60  # and reading the result out
        return wall * runs + compile_s + s.exec_watchdog_margin_s

    async def judge(self, job: JudgeJob) -> JudgeResult:
        """Never raises for the program's failures or the sandbox's: those are verdicts
        (``internal_error`` with a message for the latter, details in the log). Never hangs
        either: a job past ``deadline_s`` is cancelled and failed as ``internal_error``, so a
        stuck sandbox cannot hold its queue worker for good (the watchdog)."""
        deadline = self.deadline_s(job)
        task = asyncio.ensure_future(self._judge_verdict(job))
        try:
            done, _ = await asyncio.wait({task}, timeout=deadline)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        # The job's own teardown may be what hangs: give it a moment, never wait for good.
        done, _ = await asyncio.wait({task}, timeout=WATCHDOG_CANCEL_GRACE_S)
        if not done:
            task.add_done_callback(_log_late_end)
        log.error("judge: a %s job still ran after %.1f s; stopped by the watchdog", job.language,
                  deadline)  # fmt: skip
        return JudgeResult(
            Verdict.INTERNAL_ERROR,
            f"the job did not finish within {deadline:g} s (its wall limits plus "
            f"{self.settings.exec_watchdog_margin_s:g} s); stopped by the judge's watchdog",
        )

    async def _judge_verdict(self, job: JudgeJob) -> JudgeResult:
        try:
            return await self._judge(job)
        except SandboxError as e:
            log.warning("judge: sandbox error %s: %s", e.reason, e.log_message)
            return JudgeResult(Verdict.INTERNAL_ERROR, f"sandbox error: {e.user_message}")
        except Exception as e:
            log.exception("judge: unexpected error")
            limit = host_limit_message(e)
            if limit is not None:
                return JudgeResult(Verdict.INTERNAL_ERROR, f"sandbox error: {limit}")
            return JudgeResult(Verdict.INTERNAL_ERROR, "internal error while judging")

    async def _judge(self, job: JudgeJob) -> JudgeResult:
        runtime = self.runtime()
        lang = self.language(job.language)
        limits = job.limits
        run_memory = (
            limits.memory_mb or self.settings.exec_default_memory_mb
        ) + lang.memory_extra_mb
        run_pids = (limits.pids or self.settings.exec_default_pids) + lang.pids_extra
        run_limits = ExecLimits(
            cpu_s=limits.cpu_s,
            wall_s=limits.wall_s,
            memory_mb=run_memory,
            pids=run_pids,
            output_bytes=limits.output_bytes,
            file_size_bytes=limits.output_bytes,
        )
        sources = sorted(p for p in job.files if os.path.splitext(p)[1] in lang.extensions)
        files = dict(job.files)
        build: dict[str, bytes] | None = None
        key = ""
        if lang.compile is not None:
            command = expand(lang.compile, entry=job.entry, sources=sources, build=".")
            version = self.languages.versions.get(lang.id)
            key = cache_key(job.cache_scope, lang.id, version, command, job.files)
            build = self.cache.get(key) if self.cache.max_bytes > 0 else None
            if build is not None:
                files.update(build)
        compile_limits = self.compile_limits()
        box_memory = max(run_memory, (compile_limits.memory_mb or 0) if lang.compiled else 0)
        box_pids = max(run_pids, (compile_limits.pids or 0) if lang.compiled else 0)

        # Cached native executables are written with their mode bits: no ``chmod`` exec, so
        # the pooled sandbox's pre-started process runs the program itself.
        executables = (
            [p for p in build if not lang.artifacts[0].endswith("/")] if build is not None else []
        )
        ro_binds: dict[str, str] = {}
        deps_env: dict[str, str] = {}
        if job.dependencies:
            self.deps.bind(runtime)
            version = self.languages.versions.get(lang.id)
            installed = await self.deps.ensure(lang.id, version, job.dependencies)
            if installed.path is None:
                return JudgeResult(Verdict.COMPILATION_ERROR, "dependency installation failed",
                                   compile_output=installed.output)  # fmt: skip
            ro_binds = {str(installed.path): SANDBOX_DEPS}
            deps_env = DEPS_ENV.get(lang.id, {})
        async with runtime.ephemeral(
            files, network=False, memory_mb=box_memory, pids=box_pids, executables=executables,
            ro_binds=ro_binds, owner=job.cache_scope,
        ) as box:  # fmt: skip
            cwd = box.workspace_path
            env = {**lang.env, **deps_env}
            result = JudgeResult(Verdict.INTERNAL_ERROR)
            if lang.compile is not None and build is None:
                command = expand(lang.compile, entry=job.entry, sources=sources, build=".")
                comp = await box.exec(command, limits=compile_limits, cwd=cwd, env=env)
                result.compile_ms = round(comp.wall_ms, 3)
                output = compile_output_text(comp)
                if comp.exit_code != 0 or comp.limit_hit:
                    if comp.limit_hit:
                        output += f"\n[compilation stopped: {comp.limit_hit} limit reached]"
                    return JudgeResult(
                        Verdict.COMPILATION_ERROR,
                        "compilation failed",
                        compile_output=output,
                        compile_ms=result.compile_ms,
                    )
                result.compile_output = output
                if self.cache.max_bytes > 0:
                    self.cache.put(key, await self._collect(box, lang, compile_limits))
            elif build is not None:
                result.cached_build = True

            argv = expand(
                lang.run,
                entry=job.entry,
                sources=sources,
                build=".",
                heap_mb=limits.memory_mb or 256,
            )
            if job.cases is not None:
                out = await self._run_cases(box, job, argv, run_limits, env, run_memory)
                out.compile_output = result.compile_output
                out.compile_ms = result.compile_ms
                out.cached_build = result.cached_build
                return out
            run = await box.exec(argv, stdin=job.stdin, limits=run_limits, cwd=cwd, env=env)
        decision = classify(
            run,
            limits,
            expected=job.expected_output,
            oom_pattern=lang.oom_pattern,
            memory_limit_mb=run_memory,
        )
        out = JudgeResult.from_run(run, decision.verdict, decision.message)
        out.compile_output = result.compile_output
        out.compile_ms = result.compile_ms
        out.cached_build = result.cached_build
        return out

    async def _collect(self, box: Sandbox, lang: Language, limits: ExecLimits) -> dict[str, bytes]:
        """The compile step's artifacts, read back from the sandbox for the cache."""
        found: dict[str, bytes] = {}
        for art in lang.artifacts:
            if art.endswith("/"):
                listing = await box.exec(
                    ["/usr/bin/find", art.rstrip("/"), "-type", "f"],
                    limits=limits,
                    cwd=box.workspace_path,
                )
                names = listing.stdout.decode(errors="replace").split("\n")
                paths = [n.removeprefix("./") for n in names if n]
            else:
                paths = [art]
            for path in paths:
                found[path] = await box.read_file(path)
        return found

    async def _run_cases(
        self,
        box: Sandbox,
        job: JudgeJob,
        argv: list[str],
        run_limits: ExecLimits,
        env: Mapping[str, str],
        run_memory: int,
    ) -> JudgeResult:
        """Each test case in turn in ``box`` (compiled once); see testcases.py."""
        assert job.cases is not None
        lang = self.language(job.language)
        outcomes: list[CaseOutcome] = []

        def decide(run: ExecResult) -> Decision:
            return classify(run, job.limits, oom_pattern=lang.oom_pattern,
                            memory_limit_mb=run_memory)  # fmt: skip

        async with self._checker(job.checker) as checker:
            if isinstance(checker, str):
                return JudgeResult(Verdict.INTERNAL_ERROR, checker, extra={"cases": []})
            failed = False
            for case in job.cases:
                if failed and job.stop_on_failure:
                    outcomes.append(CaseOutcome("skipped"))
                    continue
                if job.checker.kind == "interactive":
                    assert checker is not None
                    outcome = await run_interactive(checker, box, argv, run_limits, env, case,
                                                    decide, self.settings.exec_interactor_grace_s)  # fmt: skip
                    outcomes.append(outcome)
                    failed = failed or outcome.verdict != Verdict.ACCEPTED
                    continue
                run = await box.exec(
                    argv, stdin=case.stdin, limits=run_limits, cwd=box.workspace_path, env=env
                )
                decision = decide(run)
                outcome = CaseOutcome(decision.verdict, decision.message, run)
                if decision.verdict == Verdict.ACCEPTED and case.expected is not None:
                    if checker is not None:
                        bad = await checker.check(case, run.stdout)
                        if bad is not None:
                            outcome = CaseOutcome(bad.verdict, bad.message, run)
                    elif not compare(job.checker, run.stdout, case.expected):
                        outcome = CaseOutcome(Verdict.WRONG_ANSWER, None, run)
                outcomes.append(outcome)
                failed = failed or outcome.verdict != Verdict.ACCEPTED
        verdict, message, first = summarize(outcomes)
        shown = outcomes[first if first is not None else -1].run if outcomes else None
        out = JudgeResult.from_run(shown, verdict, message) if shown else JudgeResult(verdict)
        out.message = message
        runs = [o.run for o in outcomes if o.run is not None]
        if runs:
            out.wall_ms = round(max(r.wall_ms for r in runs), 3)
            out.cpu_ms = round(max(r.cpu_ms for r in runs), 3)
            out.memory_kb = max(r.memory_kb for r in runs)
        out.extra["cases"] = [o.as_dict(i) for i, o in enumerate(outcomes)]
        return out

    @contextlib.asynccontextmanager
    async def _checker(self, checker: Checker) -> AsyncIterator[CheckerBox | str | None]:
        """A compiled checker program in its own sandbox (``None`` for the built-in
        comparisons; a message when the checker does not compile)."""
        if checker.kind not in PROGRAM_CHECKERS:
            yield None
            return
        lang = self.language(checker.language or "")
        entry = checker.entry or ""
        sources = sorted(p for p in checker.files if os.path.splitext(p)[1] in lang.extensions)
        s = self.settings
        limits = ExecLimits(cpu_s=s.exec_checker_cpu_s, wall_s=s.exec_checker_wall_s,
                            memory_mb=s.exec_checker_memory_mb + lang.memory_extra_mb,
                            pids=s.exec_default_pids + lang.pids_extra,
                            output_bytes=64 * 1024)  # fmt: skip
        compile_limits = self.compile_limits()
        async with self.runtime().ephemeral(
            checker.files, network=False,
            memory_mb=max(limits.memory_mb or 0, compile_limits.memory_mb or 0),
            pids=max(limits.pids or 0, compile_limits.pids or 0),
        ) as box:  # fmt: skip
            env = dict(lang.env)
            if lang.compile is not None:
                command = expand(lang.compile, entry=entry, sources=sources, build=".")
                comp = await box.exec(command, limits=compile_limits, cwd=box.workspace_path,
                                      env=env)  # fmt: skip
                if comp.exit_code != 0 or comp.limit_hit:
                    what = "interactor" if checker.kind == "interactive" else "checker"
                    yield f"the {what} does not compile: " + compile_output_text(comp)[:2000]
                    return
            argv = expand(lang.run, entry=entry, sources=sources, build=".", heap_mb=256)
            yield CheckerBox(box, argv, env, limits)
