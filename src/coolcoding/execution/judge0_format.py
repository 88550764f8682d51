"""Judge0's vocabulary for our executions: language ids, status ids, submission fields.

Pure functions (no I/O): the Judge0-compatible routes (api/routes/judge0.py) and the callbacks
(callbacks.py) both write a submission with ``submission_json``.
"""

from __future__ import annotations

import base64
import signal
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from coolcoding.db.models import Execution
from coolcoding.errors import InvalidInput

# Judge0 CE's ids for the languages we have (its /languages numbering), so clients that hard-code
# them (71 = Python 3, 50 = C, 54 = C++ ...) work unchanged.
LANGUAGE_IDS: dict[str, int] = {
    "bash": 46,
    "c": 50,
    "cpp": 54,
    "go": 60,
    "java": 62,
    "javascript": 63,
    "python": 71,
    "ruby": 72,
    "rust": 73,
    "typescript": 74,
}
STATUSES: dict[int, str] = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
SIGNAL_STATUS: dict[int, int] = {
    int(signal.SIGSEGV): 7,
    int(signal.SIGXFSZ): 8,
    int(signal.SIGFPE): 9,
    int(signal.SIGABRT): 10,
}
VERDICT_STATUS = {
    "accepted": 3,
    "wrong_answer": 4,
    "time_limit": 5,
    "compilation_error": 6,
    "output_limit": 8,  # Judge0 reports an output file too large as SIGXFSZ
    "memory_limit": 12,
    "internal_error": 13,
}
# What GET /submissions/{token} answers without ``fields`` (Judge0's default).
DEFAULT_FIELDS = ("token", "stdout", "time", "memory", "stderr", "compile_output", "message",
                  "status")  # fmt: skip
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "stderr",
    "compile_output", "message", "exit_code", "exit_signal", "status", "status_id", "created_at",
    "finished_at", "token", "time", "wall_time", "memory", "cpu_time_limit", "wall_time_limit",
    "memory_limit", "max_processes_and_or_threads", "callback_url", "language",
)  # fmt: skip
ENCODED = {"source_code", "stdin", "expected_output", "stdout", "stderr", "compile_output"}


def status_id(row: Execution) -> int:
    if row.status == "queued":
        return 1
    if row.status != "finished":
        return 2
    if row.verdict == "runtime_error":
        if row.signal:
            return SIGNAL_STATUS.get(row.signal, 12)
        return 11
    return VERDICT_STATUS.get(row.verdict or "", 13)


def parse_fields(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_FIELDS
    if raw.strip() == "*":
        return ALL_FIELDS
    names = tuple(f.strip() for f in raw.split(",") if f.strip())
    unknown = [f for f in names if f not in ALL_FIELDS]
    if unknown:
        raise InvalidInput(f"invalid fields: {', '.join(unknown)}", code="invalid_fields")
    return names


def _stamp(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if when is not None else None


def encode_text(data: bytes | str | None, b64: bool) -> str | None:
    if data is None:
        return None
    raw = data.encode() if isinstance(data, str) else data
    if b64:
        return base64.b64encode(raw).decode()
    return raw.decode("utf-8", errors="replace")


def submission_json(
    row: Execution, fields: Iterable[str], *, b64: bool, language_name: str = ""
) -> dict[str, Any]:
    source = row.source or {}
    files = source.get("files") or {}
    limits = row.limits or {}
    sid = status_id(row)
    finished = row.status == "finished"
    values: dict[str, Any] = {
        "token": str(row.uuid),
        "source_code": files.get(source.get("entry")),
        "language_id": LANGUAGE_IDS.get(row.language),
        "language": {"id": LANGUAGE_IDS.get(row.language), "name": language_name},
        "stdin": row.stdin,
        "expected_output": row.expected_output,
        "stdout": row.stdout if finished else None,
        "stderr": row.stderr if finished else None,
        "compile_output": row.compile_output,
        "message": row.message,
        "exit_code": row.exit_code,
        "exit_signal": row.signal,
        "status": {"id": sid, "description": STATUSES[sid]},
        "status_id": sid,
        "created_at": _stamp(row.created_at),
        "finished_at": _stamp(row.completed_at),
        "time": f"{row.cpu_ms / 1000:.3f}" if row.cpu_ms is not None else None,
        "wall_time": f"{row.wall_ms / 1000:.3f}" if row.wall_ms is not None else None,
        "memory": row.memory_kb,
        "cpu_time_limit": limits.get("cpu_s"),
        "wall_time_limit": limits.get("wall_s"),
        "memory_limit": limits["memory_mb"] * 1024 if limits.get("memory_mb") else None,
        "max_processes_and_or_threads": limits.get("pids"),
        "callback_url": row.callback_url,
    }
    return {
        f: encode_text(values[f], b64) if f in ENCODED else values[f] for f in fields if f in values
    }
