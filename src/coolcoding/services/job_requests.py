"""Judge job requests: ``JobRequest`` (``POST /api/executions``, the Judge0 API), the
validation of test cases and checkers, and their ``JudgeJob`` fields (testcases.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coolcoding.db.models import Execution, utcnow
from coolcoding.errors import InvalidInput, TooLarge
from coolcoding.execution.judge import JudgeResult
from coolcoding.execution.languages import Language, LanguageRegistry
from coolcoding.execution.testcases import Checker, JudgeCase
from coolcoding.filesync.paths import normalize_path
from coolcoding.settings import Settings


@dataclass(frozen=True)
class JobRequest:
    """A judge job as submitted (``POST /api/executions``)."""

    language: str
    source: str | None = None
    files: dict[str, str] | None = None
    entry: str | None = None
    stdin: str | None = None
    expected_output: str | None = None
    limits: dict[str, Any] | None = None
    testcases: list[dict[str, Any]] | None = None  # [{"stdin", "expected_output"}]
    checker: dict[str, Any] | None = None  # {"type", "tolerance", "language", "source"}
    stop_on_failure: bool = False
    callback_url: str | None = None  # Judge0: PUT the result there (callbacks.py)
    judge0_base64: bool = False  # Judge0: the callback's texts in base64
    dependencies: list[str] | None = (
        None  # pinned packages: ["name==1.0"] (pip), ["name@1.0"] (npm)
    )


def text_limit(name: str, value: str | None, maximum: int) -> bytes | None:
    if value is None:
        return None
    data = value.encode("utf-8")
    if len(data) > maximum:
        raise TooLarge(
            f"{name} is {len(data)} bytes; the maximum is {maximum}",
            code=f"{name}_too_large",
            maximum=maximum,
        )
    return data


def testcases_of(
    req: JobRequest, s: Settings, language: Callable[[str], Language]
) -> dict[str, Any] | None:
    """The job's test cases and checker, validated (``None`` without test cases)."""
    if req.testcases is None:
        if req.checker is not None:
            raise InvalidInput("a checker needs testcases", code="invalid_testcases")
        return None
    if req.stdin is not None or req.expected_output is not None:
        raise InvalidInput("give testcases or stdin/expected_output, not both",
                           code="invalid_testcases")  # fmt: skip
    if not req.testcases:
        raise InvalidInput("testcases is empty", code="invalid_testcases")
    if len(req.testcases) > s.exec_max_testcases:
        raise TooLarge(f"{len(req.testcases)} test cases; at most {s.exec_max_testcases}",
                       code="too_many_testcases", maximum=s.exec_max_testcases)  # fmt: skip
    size = 0
    for case in req.testcases:
        text_limit("stdin", case.get("stdin"), s.exec_max_stdin_bytes)
        text_limit("expected_output", case.get("expected_output"),
                         s.exec_max_output_bytes)  # fmt: skip
        size += len(str(case.get("stdin") or "").encode())
        size += len(str(case.get("expected_output") or "").encode())
    if size > s.exec_max_testcases_bytes:
        raise TooLarge(
            f"the test cases are {size} bytes; at most {s.exec_max_testcases_bytes} in all "
            "(COOLCODING_EXEC_MAX_TESTCASES_BYTES)",
            code="testcases_too_large",
            maximum=s.exec_max_testcases_bytes,
        )
    checker = dict(req.checker or {"type": "exact"})
    if checker.get("type") == "program":
        lang = language(str(checker.get("language") or ""))
        source = checker.get("source")
        if not source or not str(source).strip():
            raise InvalidInput("a program checker needs its source", code="invalid_checker")
        if len(str(source).encode()) > s.exec_max_source_bytes:
            raise TooLarge("the checker's source is too large", code="source_too_large",
                           maximum=s.exec_max_source_bytes)  # fmt: skip
        checker["language"] = lang.id
    elif checker.get("language") or checker.get("source"):
        raise InvalidInput("language and source are for a program checker",
                           code="invalid_checker")  # fmt: skip
    return {"cases": req.testcases, "checker": checker, "stop_on_failure": req.stop_on_failure}


def case_fields(row: Execution, languages: LanguageRegistry) -> dict[str, Any]:
    """The ``JudgeJob`` fields of ``row``'s test cases and checker (none without)."""
    spec = row.testcases
    if spec is None:
        return {}
    cases = [
        JudgeCase(
            stdin=str(c.get("stdin") or "").encode(),
            expected=None
            if c.get("expected_output") is None
            else str(c["expected_output"]).encode(),
        )
        for c in spec.get("cases", [])
    ]
    chk = spec.get("checker") or {}
    checker = Checker(kind=str(chk.get("type", "exact")),
                      tolerance=float(chk.get("tolerance", 1e-6)))  # fmt: skip
    if checker.kind == "program":
        lang = languages.get(str(chk.get("language")))
        assert lang is not None
        name = lang.source_name(str(chk.get("source")))
        checker = Checker(kind="program", language=lang.id,
                          files={name: str(chk.get("source")).encode()}, entry=name)  # fmt: skip
    return {"cases": cases, "checker": checker,
            "stop_on_failure": bool(spec.get("stop_on_failure"))}  # fmt: skip


def entry_of(lang: Language, files: dict[str, str], entry: str | None) -> str:
    """The file to run: ``entry`` checked, or the only file of the language, or its default."""
    if entry is not None:
        entry = normalize_path(entry)
        if entry not in files:
            raise InvalidInput(f"entry {entry!r} is not one of the files", code="invalid_entry")
        return entry
    ours = sorted(p for p in files if any(p.endswith(e) for e in lang.extensions))
    if len(ours) == 1:
        return ours[0]
    if lang.default_file in files:
        return lang.default_file
    raise InvalidInput(
        f"say which file to run: entry is required with {len(ours)} {lang.name} files",
        code="entry_required",
    )


def result_values(result: JudgeResult) -> dict[str, Any]:
    """The ``executions`` columns of a finished job's result."""
    return {
        "status": "finished",
        "verdict": result.verdict.value,
        "message": result.message,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "compile_output": result.compile_output,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "wall_ms": result.wall_ms,
        "cpu_ms": result.cpu_ms,
        "memory_kb": result.memory_kb,
        "case_results": result.extra.get("cases"),
        "completed_at": utcnow(),
    }


def source_flag(row: Execution) -> bool:
    """Whether ``row`` came through the Judge0 API with ``base64_encoded`` (its callback too)."""
    return bool((row.source or {}).get("judge0_base64"))
