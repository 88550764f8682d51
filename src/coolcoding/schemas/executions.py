"""Request/response models of languages, judge jobs and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from coolcoding.db.models import Execution
from coolcoding.execution.verdicts import signal_name
from coolcoding.filesync.paths import DEFAULT_RULES
from coolcoding.schemas.limits import PATH_PATTERN, LanguageId, RunnablePath, WorkspacePath


class LanguageOut(BaseModel):
    id: str
    name: str
    version: str | None
    extensions: list[str]
    compiled: bool
    available: bool


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_s: float | None = Field(default=None, gt=0)
    wall_s: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    pids: int | None = Field(default=None, gt=0)
    output_bytes: int | None = Field(default=None, gt=0)


def _files_keys_are_paths(schema: dict[str, Any]) -> None:
    """State the rule of ``files``' keys as ``propertyNames`` (pydantic writes the pattern as
    ``patternProperties``, which does not restrict the other keys)."""
    for option in schema["properties"]["files"].get("anyOf", []):
        if option.get("type") == "object":
            option.pop("patternProperties", None)
            option["propertyNames"] = {
                "minLength": 1,
                "maxLength": DEFAULT_RULES.max_path_bytes,
                "pattern": PATH_PATTERN,
            }
            option["additionalProperties"] = {"type": "string"}


class TestCaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stdin: str = ""
    expected_output: str | None = None


class CheckerIn(BaseModel):
    """How a test case's output is judged: ``exact`` (the default), ``token``, ``float``
    (numbers within ``tolerance``, absolute or relative), ``program``: a checker in
    ``language`` (``source``, or ``files`` and ``entry``) reading the files ``input``,
    ``output`` and ``expected``; exit 0 accepts, exit 1 rejects, anything else is the
    checker's failure; or ``interactive``: such a program as the interactor, run at the same
    time as the submission, its stdout the submission's stdin and the other way round, with
    the files ``input`` and ``expected`` (400 ``interactive_unsupported`` where the sandbox
    runtime cannot connect two programs)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda s: _files_keys_are_paths(s))

    type: Literal["exact", "token", "float", "program", "interactive"] = "exact"
    tolerance: float = Field(default=1e-6, ge=0, le=1e9)
    language: LanguageId | None = None
    source: str | None = None
    files: dict[WorkspacePath, str] | None = Field(default=None, max_length=100)
    entry: WorkspacePath | None = None


class CaseResultOut(BaseModel):
    index: int
    verdict: str  # a verdict, or skipped / checker_error
    message: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    wall_ms: float | None = None
    cpu_ms: float | None = None
    memory_kb: int | None = None
    stdout: str | None = None


class ExecutionIn(BaseModel):
    """A judge job: either ``source`` (one file) or ``files`` (path -> content) with ``entry``
    (the file to run; needed when more than one file is in ``language``). Rules between fields
    that JSON Schema cannot state answer 400: ``invalid_source`` (both or neither of source and
    files), ``empty_source`` (only blank content), ``invalid_entry`` (entry is not one of the
    files), ``entry_required``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda s: _files_keys_are_paths(s))

    language: LanguageId
    source: str | None = None
    files: dict[WorkspacePath, str] | None = Field(default=None, max_length=1000)
    entry: WorkspacePath | None = None
    stdin: str | None = None
    expected_output: str | None = None
    limits: LimitsIn | None = None
    testcases: list[TestCaseIn] | None = Field(
        default=None, description="Test cases (instead of stdin): compiled once, run on each"
    )
    checker: CheckerIn | None = None
    stop_on_first_failure: bool = False
    dependencies: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None,
        max_length=100,
        description="Pinned packages installed once into a shared read-only cache: "
        '"name==version" (Python, pip), "name@version" (JavaScript, npm). An install that '
        "fails answers compilation_error with the installer's output.",
    )


class BatchIn(BaseModel):
    jobs: list[ExecutionIn] = Field(min_length=1)


class RunIn(BaseModel):
    """``path`` (default: the session's entry file) is run by the language of its extension."""

    model_config = ConfigDict(extra="forbid")

    path: RunnablePath | None = None
    stdin: str | None = None
    # A workspace file piped as the program's stdin (instead of ``stdin``).
    stdin_path: WorkspacePath | None = None


class RunStdinIn(BaseModel):
    """Input for the session's running program; ``eof`` then closes its stdin (Ctrl+D)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(default="", max_length=1024 * 1024)
    eof: bool = False


class RunControlOut(BaseModel):
    """The run that received the input or was stopped."""

    execution_id: str


class ExecutionRef(BaseModel):
    id: str
    status: str


class RunStartedOut(BaseModel):
    """A run that started in a session's sandbox: follow it at ``events`` (server-sent events)."""

    execution_id: str
    id: str
    status: str
    events: str


class BatchOut(BaseModel):
    ids: list[str]


class ExecutionOut(BaseModel):
    """An execution. ``stdout``/``stderr``/``compile_output`` are left out of list answers."""

    id: str
    kind: str
    language: str
    status: str  # queued | running | finished
    verdict: str | None
    message: str | None
    session_uuid: str | None = None
    entry: str | None
    exit_code: int | None
    signal: int | None
    signal_name: str | None
    wall_ms: float | None
    cpu_ms: float | None
    memory_kb: int | None
    limits: dict[str, Any] | None
    stdout: str | None = None
    stderr: str | None = None
    compile_output: str | None = None
    testcases: list[CaseResultOut] | None = None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(
        cls, row: Execution, *, full: bool = True, session_uuid: str | None = None
    ) -> ExecutionOut:
        def text(data: bytes | None) -> str | None:
            return data.decode("utf-8", errors="replace") if data is not None else None

        return cls(
            id=str(row.uuid),
            kind=row.kind,
            language=row.language,
            status=row.status,
            verdict=row.verdict,
            message=row.message,
            session_uuid=session_uuid,
            entry=(row.source or {}).get("entry"),
            exit_code=row.exit_code,
            signal=row.signal,
            signal_name=signal_name(row.signal) if row.signal else None,
            wall_ms=row.wall_ms,
            cpu_ms=row.cpu_ms,
            memory_kb=row.memory_kb,
            limits=row.limits,
            stdout=text(row.stdout) if full else None,
            stderr=text(row.stderr) if full else None,
            compile_output=row.compile_output if full else None,
            testcases=[CaseResultOut(**c) for c in row.case_results]
            if full and row.case_results is not None
            else None,
            created_at=row.created_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
        )


class ExecutionPage(BaseModel):
    items: list[ExecutionOut]
    next_offset: int | None
