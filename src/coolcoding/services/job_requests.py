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
from coolcoding.execution.testcases import PROGRAM_CHECKERS, Checker, JudgeCase
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
    # {"type", "tolerance", "language", "source" or "files" and "entry"}
    checker: dict[str, Any] | None = None
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
    req: JobRequest, s: Settings, language: Callable[[str], Language], connected: bool = False
) -> dict[str, Any] | None:
    """The job's test cases and checker, validated (``None`` without test cases).
    ``connected``: whether the runtime can run interactive problems (``connected_execs``)."""
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
    checker = checker_of(req.checker, s, language, connected)
    return {"cases": req.testcases, "checker": checker, "stop_on_failure": req.stop_on_failure}


def checker_of(
    given: dict[str, Any] | None,
    s: Settings,
    language: Callable[[str], Language],
    connected: bool,
) -> dict[str, Any]:
    """The checker as stored: a program's (``program``, ``interactive``) as ``files`` and
    ``entry``, from ``source`` or ``files`` (and ``entry``, as for the job's own files)."""
    checker = {k: v for k, v in (given or {"type": "exact"}).items() if v is not None}
    kind = checker.get("type", "exact")
    source, files = checker.pop("source", None), checker.pop("files", None)
    if kind not in PROGRAM_CHECKERS:
        if checker.get("language") or source is not None or files is not None or "entry" in checker:
            raise InvalidInput("language, source, files and entry are for a program checker",
                               code="invalid_checker")  # fmt: skip
        return checker
    if kind == "interactive" and not connected:
        raise InvalidInput(
            "this server's sandbox runtime cannot run interactive problems (it cannot connect "
            "two programs)",
            code="interactive_unsupported",
        )
    what = "an interactor" if kind == "interactive" else "a program checker"
    lang = language(str(checker.get("language") or ""))
    if (source is None) == (files is None):
        raise InvalidInput(f"{what} needs its source or its files", code="invalid_checker")
    if source is not None:
        files = {lang.source_name(str(source)): str(source)}
    else:
        files = {normalize_path(p): str(c) for p, c in dict(files).items()}
    if not files or all(not c.strip() for c in files.values()):
        raise InvalidInput(f"{what} needs its source", code="invalid_checker")
    if sum(len(c.encode()) for c in files.values()) > s.exec_max_source_bytes:
        raise TooLarge(f"the {what.split()[-1]}'s source is too large", code="source_too_large",
                       maximum=s.exec_max_source_bytes)  # fmt: skip
    entry = checker.get("entry")
    checker.update(language=lang.id, files=files,
                   entry=entry_of(lang, files, None if entry is None else str(entry)))  # fmt: skip
    return checker


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
    if checker.kind in PROGRAM_CHECKERS:
        lang = languages.get(str(chk.get("language")))
        assert lang is not None
        if "files" in chk:
            files = {str(p): str(c).encode() for p, c in chk["files"].items()}
            entry = str(chk["entry"])
        else:  # stored before checkers had files
            entry = lang.source_name(str(chk.get("source")))
            files = {entry: str(chk.get("source")).encode()}
        checker = Checker(kind=checker.kind, language=lang.id, files=files, entry=entry)
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
