"""Verdicts: what a finished run means, decided by pure functions of what the kernel measured."""

from __future__ import annotations

import signal as signal_mod
from dataclasses import dataclass
from enum import StrEnum

from coolcoding.sandbox.base import ExecLimits, ExecResult


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"
    COMPILATION_ERROR = "compilation_error"
    RUNTIME_ERROR = "runtime_error"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    message: str | None = None


def signal_name(signum: int) -> str:
    try:
        return signal_mod.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def normalize_output(data: bytes) -> bytes:
    """Output as compared with the expected one: trailing whitespace of each line and trailing
    empty lines do not count (a judge's usual leniency); "\\r\\n" counts as "\\n"."""
    lines = [line.rstrip(b" \t\r\f\v") for line in data.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return b"\n".join(lines)


def outputs_match(actual: bytes, expected: bytes) -> bool:
    return normalize_output(actual) == normalize_output(expected)


def _limit_message(which: str, limits: ExecLimits) -> str:
    if which == "cpu":
        return f"CPU time limit of {limits.cpu_s:g} s exceeded"
    if which == "wall":
        return f"wall-clock time limit of {limits.wall_s:g} s exceeded"
    if which == "memory":
        return f"memory limit of {limits.memory_mb} MiB exceeded"
    if which == "output":
        return f"output limit of {limits.output_bytes} bytes exceeded"
    return f"{which} limit reached"


def classify(
    result: ExecResult,
    limits: ExecLimits,
    *,
    expected: bytes | None = None,
    oom_pattern: str | None = None,
    memory_limit_mb: int | None = None,
) -> Decision:
    """The verdict of a run. ``limits`` are what the user asked for; ``memory_limit_mb`` is the
    limit the kernel enforced when it differs (a JVM's allowance on top of its heap)."""
    hit = result.limit_hit
    if hit in ("cpu", "wall"):
        return Decision(Verdict.TIME_LIMIT, _limit_message(hit, limits))
    # SIGXCPU: the kernel's RLIMIT_CPU backstop fired before the runtime's own CPU watchdog.
    if result.signal == signal_mod.SIGXCPU or (
        limits.cpu_s is not None and result.cpu_ms > limits.cpu_s * 1000 and result.exit_code != 0
    ):
        return Decision(Verdict.TIME_LIMIT, _limit_message("cpu", limits))
    if hit == "memory":
        return Decision(Verdict.MEMORY_LIMIT, _limit_message("memory", limits))
    if hit == "output" or result.stdout_truncated or result.stderr_truncated:
        return Decision(Verdict.OUTPUT_LIMIT, _limit_message("output", limits))
    if result.exit_code != 0 and oom_pattern and oom_pattern.encode() in result.stderr:
        return Decision(Verdict.MEMORY_LIMIT, _limit_message("memory", limits))
    enforced_mb = memory_limit_mb or limits.memory_mb
    if (
        result.signal == signal_mod.SIGKILL
        and enforced_mb is not None
        and result.memory_kb >= enforced_mb * 1024 * 0.95
    ):
        # The OOM killer's SIGKILL when the runtime could not tell (no oom event seen).
        return Decision(Verdict.MEMORY_LIMIT, _limit_message("memory", limits))
    if hit == "disk":
        return Decision(Verdict.OUTPUT_LIMIT, "file size or disk limit exceeded")
    if hit == "pids":
        # A fork failed: even when the program then exited 0 (a fork bomb whose first process
        # returns at once), it tried to exceed its limits.
        return Decision(Verdict.RUNTIME_ERROR, f"process limit of {limits.pids} reached")
    if result.signal is not None:
        name = signal_name(result.signal)
        return Decision(Verdict.RUNTIME_ERROR, f"killed by signal {result.signal} ({name})")
    if result.exit_code != 0:
        return Decision(Verdict.RUNTIME_ERROR, f"exit code {result.exit_code}")
    if expected is not None and not outputs_match(result.stdout, expected):
        return Decision(Verdict.WRONG_ANSWER, "output differs from the expected output")
    return Decision(Verdict.ACCEPTED)
