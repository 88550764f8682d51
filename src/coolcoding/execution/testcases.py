"""Test cases: one submission, compiled once, run on many inputs, each with its own verdict.

Cases run one after another in the job's sandbox (the first in its pre-started process); a
case's verdict is the run's (``verdicts.classify``: limits, crashes) and, for a run that ended
well, the checker's:

- ``exact``: the output equals the expected one (trailing whitespace of lines and trailing
  empty lines aside, as for a single job);
- ``token``: the same whitespace-separated tokens;
- ``float``: the same tokens, numbers equal within ``tolerance`` (absolute or relative);
- ``program``: a checker program in any registered language, in a sandbox of its own (the
  submission cannot touch it), run per case with the files ``input``, ``output`` and
  ``expected`` in its working directory: exit 0 accepts, exit 1 is a wrong answer (its stdout
  the message); anything else (a crash, a limit, a compile error) is the checker's fault and
  fails the job as ``internal_error`` with a ``checker_error`` case status saying why;
- ``interactive``: such a program as the interactor, run at the same time as the submission,
  the two talking through pipes (interactive.py says who decides when both fail).

The job's verdict is its first failing case's (``test case 3: wrong answer``), else accepted;
``stop_on_failure`` skips the cases after it (``skipped``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coolcoding.execution.verdicts import Verdict, outputs_match
from coolcoding.sandbox.base import ExecLimits, ExecResult, Sandbox

CHECKERS = ("exact", "token", "float", "program", "interactive")
PROGRAM_CHECKERS = ("program", "interactive")  # a program of their own (interactive.py)
CASE_OUTPUT_KEEP = 4096  # bytes of each case's stdout kept in its result


@dataclass(frozen=True)
class JudgeCase:
    stdin: bytes
    expected: bytes | None


@dataclass(frozen=True)
class Checker:
    kind: str = "exact"
    tolerance: float = 1e-6
    language: str | None = None  # kinds "program" and "interactive"
    files: Mapping[str, bytes] = field(default_factory=dict)
    entry: str | None = None


def tokens_match(actual: bytes, expected: bytes) -> bool:
    return actual.split() == expected.split()


def _number(token: bytes) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def floats_match(actual: bytes, expected: bytes, tolerance: float) -> bool:
    got, want = actual.split(), expected.split()
    if len(got) != len(want):
        return False
    for a, e in zip(got, want, strict=True):
        x, y = _number(a), _number(e)
        if y is None or x is None:
            if a != e:
                return False
        elif abs(x - y) > tolerance * max(1.0, abs(y)):
            return False
    return True


def compare(checker: Checker, actual: bytes, expected: bytes) -> bool:
    if checker.kind == "token":
        return tokens_match(actual, expected)
    if checker.kind == "float":
        return floats_match(actual, expected, checker.tolerance)
    return outputs_match(actual, expected)


@dataclass
class CaseOutcome:
    verdict: Verdict | str  # a Verdict, or "skipped" / "checker_error"
    message: str | None = None
    run: ExecResult | None = None

    def as_dict(self, index: int) -> dict[str, Any]:
        run = self.run
        out: dict[str, Any] = {
            "index": index,
            "verdict": str(self.verdict),
            "message": self.message,
        }
        if run is not None:
            out.update(
                exit_code=run.exit_code,
                signal=run.signal,
                wall_ms=round(run.wall_ms, 3),
                cpu_ms=round(run.cpu_ms, 3),
                memory_kb=run.memory_kb,
                stdout=run.stdout[:CASE_OUTPUT_KEEP].decode("utf-8", errors="replace"),
            )
        return out


@dataclass
class CheckerBox:
    """A compiled, ready checker program in its own sandbox."""

    box: Sandbox
    argv: list[str]
    env: Mapping[str, str]
    limits: ExecLimits

    async def check(self, case: JudgeCase, output: bytes) -> CaseOutcome | None:
        """``None``: accepted; else the wrong answer or the checker's failure."""
        await self.box.write_files(
            {"input": case.stdin, "output": output, "expected": case.expected or b""}
        )
        res = await self.box.exec(
            self.argv, limits=self.limits, cwd=self.box.workspace_path, env=self.env
        )
        said = (res.stdout or res.stderr)[:1000].decode("utf-8", errors="replace").strip()
        return program_verdict(res, said, "checker")


def program_verdict(res: ExecResult, said: str, who: str) -> CaseOutcome | None:
    """What a checker or an interactor program (``who``) said of a case by how it ended:
    ``None`` (exit 0) accepts, exit 1 is a wrong answer with ``said`` as the message, anything
    else (another exit code, a signal, a limit) is the program's own failure."""
    if res.limit_hit:
        return CaseOutcome("checker_error", f"the {who} hit its {res.limit_hit} limit")
    if res.exit_code == 0:
        return None
    if res.exit_code == 1:
        return CaseOutcome(Verdict.WRONG_ANSWER, said or f"rejected by the {who}")
    how = f"exit code {res.exit_code}" if res.exit_code is not None else f"signal {res.signal}"
    return CaseOutcome("checker_error", f"the {who} failed ({how}): {said}".rstrip(": "))


def summarize(outcomes: Sequence[CaseOutcome]) -> tuple[Verdict, str | None, int | None]:
    """(job verdict, message, index of the first failing case)."""
    for i, o in enumerate(outcomes):
        if o.verdict == "checker_error":
            return Verdict.INTERNAL_ERROR, f"test case {i + 1}: {o.message}", i
        if o.verdict not in (Verdict.ACCEPTED, "skipped"):
            label = str(o.verdict).replace("_", " ")
            detail = f" ({o.message})" if o.message else ""
            return Verdict(str(o.verdict)), f"test case {i + 1}: {label}{detail}", i
    return Verdict.ACCEPTED, None, None
