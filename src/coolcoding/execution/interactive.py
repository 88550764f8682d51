"""Interactive problems: per test case, the submission and an interactor run at once, each
one's stdout the other's stdin.

The interactor is a checker program (testcases.py: any registered language, compiled once in
a sandbox of its own, which the submission cannot see) with the case's ``input`` and
``expected`` as files in its working directory. The two programs are joined by two host pipes
given to the sandboxes as their fds 0 and 1 (``Sandbox.start_connected``): the bytes never pass
through the server, which holds no copy of the pipes once both programs started.

Who decides the case (the first program to end is the cause, the other's end its effect):

- the interactor ends first: exit 0 leaves the verdict to the submission, which must then end
  by itself (``accepted`` after exit 0; a crash, a non-zero exit or a limit as usual); exit 1
  is ``wrong_answer`` (its stderr, the first 1000 bytes, the message) and the submission is
  stopped: a broken pipe, an end of input or a hang that follows is its consequence; anything
  else (another exit code, a signal, a limit of its own) is ``checker_error``;
- the submission ends first: a failure (a limit, a crash, a non-zero exit) is its verdict and
  the interactor is stopped (its reaction to the closed pipe does not count); after exit 0 the
  interactor decides as above (0 accepted, 1 wrong answer, else ``checker_error``).

Both waiting for each other (a deadlock) ends at the submission's wall limit: its time limit,
as the interactor's wall limit is the submission's plus ``exec_interactor_grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping

from coolcoding.execution.testcases import CaseOutcome, CheckerBox, JudgeCase, program_verdict
from coolcoding.execution.verdicts import Decision, Verdict
from coolcoding.sandbox.base import ExecLimits, ExecResult, ExecStream, Sandbox

MESSAGE_KEEP = 1000  # bytes of the interactor's stderr kept as the wrong answer's message


def interactor_limits(checker: ExecLimits, submission_wall_s: float, grace_s: float) -> ExecLimits:
    """The interactor's limits for one case: its own CPU and memory (``exec_checker_*``), and a
    wall limit past the submission's, so that a deadlock is the submission's time limit."""
    return ExecLimits(
        cpu_s=checker.cpu_s,
        wall_s=submission_wall_s + grace_s,
        memory_mb=checker.memory_mb,
        pids=checker.pids,
        output_bytes=checker.output_bytes,
    )


def interactor_outcome(res: ExecResult) -> CaseOutcome | None:
    """``None``: the interactor accepted; else a wrong answer or its own failure."""
    said = res.stderr[:MESSAGE_KEEP].decode("utf-8", errors="replace").strip()
    return program_verdict(res, said, "interactor")


def _ended_at(run: ExecStream) -> float | None:
    at = getattr(run, "ended_at", None)
    return at if isinstance(at, float) else None


async def _stop(run: ExecStream, task: asyncio.Task[ExecResult]) -> ExecResult:
    if not task.done():
        await run.kill()
    return await task


async def _start(
    box: Sandbox,
    argv: list[str],
    fds: tuple[int, int],
    limits: ExecLimits,
    env: Mapping[str, str],
) -> ExecStream:
    """Start ``argv`` on ``fds`` (stdin, stdout), then close our copies of them either way."""
    try:
        return await box.start_connected(argv, stdin_fd=fds[0], stdout_fd=fds[1], limits=limits,
                                         cwd=box.workspace_path, env=env)  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)


async def run_interactive(
    interactor: CheckerBox,
    box: Sandbox,
    argv: list[str],
    limits: ExecLimits,
    env: Mapping[str, str],
    case: JudgeCase,
    decide: Callable[[ExecResult], Decision],
    grace_s: float,
) -> CaseOutcome:
    """One case: ``argv`` in ``box`` against the interactor; see the module docstring.
    ``decide``: the submission's own verdict of a run (limits, crashes)."""
    await interactor.box.write_files({"input": case.stdin, "expected": case.expected or b""})
    to_interactor = os.pipe2(os.O_CLOEXEC)  # (read, write): the submission's stdout
    to_submission = os.pipe2(os.O_CLOEXEC)  # the interactor's stdout
    wall = limits.wall_s if limits.wall_s is not None else 0.0
    try:
        judge_run = await _start(
            interactor.box,
            interactor.argv,
            (to_interactor[0], to_submission[1]),
            interactor_limits(interactor.limits, wall, grace_s),
            interactor.env,
        )
    except BaseException:
        os.close(to_interactor[1])
        os.close(to_submission[0])
        raise
    judge_task = asyncio.ensure_future(judge_run.result())
    try:
        run = await _start(box, argv, (to_submission[0], to_interactor[1]), limits, env)
    except BaseException:
        await _stop(judge_run, judge_task)
        raise
    task = asyncio.ensure_future(run.result())
    try:
        await asyncio.wait({task, judge_task}, return_when=asyncio.FIRST_COMPLETED)
        sub_at, judge_at = _ended_at(run), _ended_at(judge_run)
        if sub_at is not None and judge_at is not None:
            submission_first = sub_at <= judge_at
        elif sub_at is not None or judge_at is not None:
            submission_first = sub_at is not None
        else:  # a runtime that does not say when: the first result
            submission_first = task.done()
        if submission_first:
            res = await task
            own = decide(res)
            if own.verdict != Verdict.ACCEPTED:
                await _stop(judge_run, judge_task)
                return CaseOutcome(own.verdict, own.message, res)
            verdict = interactor_outcome(await judge_task)
        else:
            verdict = interactor_outcome(await judge_task)
            if verdict is None:
                res = await task
                own = decide(res)
                return CaseOutcome(own.verdict, own.message, res)
            res = await _stop(run, task)
        if verdict is None:
            return CaseOutcome(Verdict.ACCEPTED, None, res)
        return CaseOutcome(verdict.verdict, verdict.message, res)
    finally:
        for t, r in ((task, run), (judge_task, judge_run)):
            if not t.done():
                with contextlib.suppress(Exception):
                    await _stop(r, t)
