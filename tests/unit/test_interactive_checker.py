"""Interactive checkers without sandboxes: the request's validation (a runtime that cannot
connect two programs answers ``interactive_unsupported``) and how an interactor's end reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from coolcoding.errors import InvalidInput
from coolcoding.execution.interactive import interactor_limits, interactor_outcome
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.execution.verdicts import Verdict
from coolcoding.sandbox.base import ExecLimits, ExecResult
from coolcoding.services import job_requests
from coolcoding.services.job_requests import JobRequest
from coolcoding.settings import Settings


def request(checker: dict[str, object]) -> JobRequest:
    return JobRequest(language="python", source="print(1)", testcases=[{"stdin": "1"}],
                      checker=checker)  # fmt: skip


def validate(checker: dict[str, object], tmp_path: Path, connected: bool) -> object:
    languages = LanguageRegistry()

    def language(lang_id: str) -> object:
        lang = languages.get(lang_id)
        assert lang is not None
        return lang

    settings = Settings(environment="test", data_dir=tmp_path)  # type: ignore[call-arg]
    return job_requests.testcases_of(request(checker), settings, language, connected)  # type: ignore[arg-type]


def test_a_runtime_without_connected_execs_refuses_interactive_problems(tmp_path: Path) -> None:
    checker = {"type": "interactive", "language": "python", "source": "print(1)"}
    with pytest.raises(InvalidInput) as info:
        validate(checker, tmp_path, connected=False)
    assert info.value.code == "interactive_unsupported"
    spec = validate(checker, tmp_path, connected=True)
    assert spec == {
        "cases": [{"stdin": "1"}],
        "checker": {"type": "interactive", "language": "python", "files": {"main.py": "print(1)"},
                    "entry": "main.py"},
        "stop_on_failure": False,
    }  # fmt: skip


def test_program_checkers_are_stored_as_files_and_entry(tmp_path: Path) -> None:
    checker = {"type": "program", "language": "python", "files": {"chk/a.py": "x"}}
    spec = validate(checker, tmp_path, connected=False)
    assert isinstance(spec, dict)
    assert spec["checker"]["files"] == {"chk/a.py": "x"} and spec["checker"]["entry"] == "chk/a.py"


def result(exit_code: int | None, stderr: bytes = b"", **kw: object) -> ExecResult:
    return ExecResult(exit_code=exit_code, signal=kw.pop("signal", None), stdout=b"",  # type: ignore[arg-type]
                      stderr=stderr, wall_ms=1, cpu_ms=1, memory_kb=1, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_how_an_interactors_end_reads() -> None:
    assert interactor_outcome(result(0)) is None
    wa = interactor_outcome(result(1, b"x" * 3000))
    assert wa is not None and wa.verdict == Verdict.WRONG_ANSWER and wa.message == "x" * 1000
    bad = interactor_outcome(result(None, b"boom", signal=11))
    assert bad is not None and bad.verdict == "checker_error"
    assert bad.message == "the interactor failed (signal 11): boom"
    hit = interactor_outcome(result(0, limit_hit="cpu"))
    assert hit is not None and hit.message == "the interactor hit its cpu limit"


def test_the_interactor_outlives_the_submissions_wall_limit() -> None:
    lim = interactor_limits(ExecLimits(cpu_s=5, wall_s=10, memory_mb=256), 3.0, 2.0)
    assert lim.wall_s == 5.0 and lim.cpu_s == 5 and lim.memory_mb == 256
