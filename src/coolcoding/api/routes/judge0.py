"""A Judge0-compatible API (Judge0 CE 1.13 routes, field names, status and language ids), at
``judge0_prefix`` (default ``/judge0``) when ``judge0_enabled``; an existing Judge0 client works
against it unchanged. Authentication: an API token of the user (``X-Auth-Token``, Judge0's
header, or ``Authorization: Bearer``), created in the UI or with ``POST /api/tokens``.

Limits use Judge0's names and units (``cpu_time_limit`` and ``wall_time_limit`` in seconds,
``memory_limit`` in KB, ``max_processes_and_or_threads``, ``max_file_size`` in KB) and this
server's maxima; fields of Judge0 we do not implement (``compiler_options``,
``command_line_arguments``, ``additional_files``, ``enable_network``,
``redirect_stderr_to_stdout``, ``number_of_runs`` > 1) answer 400 when set.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from coolcoding.api.deps import PlatformDep
from coolcoding.errors import InvalidInput
from coolcoding.execution.judge0_format import (
    LANGUAGE_IDS,
    STATUSES,
    parse_fields,
    submission_json,
)
from coolcoding.services.executions import ExecutionService, JobRequest

JUDGE0_VERSION = "1.13.1"  # the API generation we follow (the SDKs key language ids on it)
BY_ID = {v: k for k, v in LANGUAGE_IDS.items()}


class SubmissionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source_code: str = Field(max_length=64 * 1024 * 1024)
    language_id: int
    stdin: str | None = None
    expected_output: str | None = None
    cpu_time_limit: float | None = Field(default=None, gt=0)
    cpu_extra_time: float | None = None
    wall_time_limit: float | None = Field(default=None, gt=0)
    memory_limit: float | None = Field(default=None, gt=0)
    stack_limit: int | None = None
    max_processes_and_or_threads: int | None = Field(default=None, gt=0)
    enable_per_process_and_thread_time_limit: bool | None = None
    enable_per_process_and_thread_memory_limit: bool | None = None
    max_file_size: int | None = Field(default=None, gt=0)
    redirect_stderr_to_stdout: bool | None = None
    enable_network: bool | None = None
    number_of_runs: int | None = None
    callback_url: str | None = None
    compiler_options: str | None = None
    command_line_arguments: str | None = None
    additional_files: str | None = None


class BatchIn(BaseModel):
    submissions: list[SubmissionIn] = Field(min_length=1)


async def judge0_user(request: Request, platform: PlatformDep) -> int:
    raw = request.headers.get("x-auth-token")
    auth = request.headers.get("authorization", "")
    if not raw and auth.lower().startswith("bearer "):
        raw = auth[7:].strip()
    return await platform.api_tokens.authenticate(raw)


User = Annotated[int, Depends(judge0_user)]


async def svc_of(platform: PlatformDep) -> ExecutionService:
    return platform.executions


Svc = Annotated[ExecutionService, Depends(svc_of)]
Fields = Annotated[str | None, Query(max_length=2000)]


def _text(value: str | None, b64: bool, name: str) -> str | None:
    if value is None or not b64:
        return value
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise InvalidInput(f"{name} is not valid base64 of UTF-8 text",
                           code="invalid_base64") from e  # fmt: skip


def job_request(body: SubmissionIn, b64: bool) -> JobRequest:
    unsupported = [
        name
        for name in ("compiler_options", "command_line_arguments", "additional_files")
        if getattr(body, name)
    ]
    if body.enable_network:
        unsupported.append("enable_network")
    if body.redirect_stderr_to_stdout:
        unsupported.append("redirect_stderr_to_stdout")
    if body.number_of_runs not in (None, 1):
        unsupported.append("number_of_runs")
    if unsupported:
        raise InvalidInput(f"not supported here: {', '.join(unsupported)}",
                           code="unsupported_field")  # fmt: skip
    language = BY_ID.get(body.language_id)
    if language is None:
        raise InvalidInput(f"language with id {body.language_id} doesn't exist",
                           code="unknown_language")  # fmt: skip
    limits: dict[str, Any] = {}
    if body.cpu_time_limit is not None:
        limits["cpu_s"] = body.cpu_time_limit
    if body.wall_time_limit is not None:
        limits["wall_s"] = body.wall_time_limit
    if body.memory_limit is not None:
        limits["memory_mb"] = max(1, math.ceil(body.memory_limit / 1024))
    if body.max_processes_and_or_threads is not None:
        limits["pids"] = body.max_processes_and_or_threads
    if body.max_file_size is not None:
        limits["output_bytes"] = body.max_file_size * 1024
    return JobRequest(
        language=language,
        source=_text(body.source_code, b64, "source_code"),
        stdin=_text(body.stdin, b64, "stdin"),
        expected_output=_text(body.expected_output, b64, "expected_output"),
        limits=limits or None,
        callback_url=body.callback_url,
        judge0_base64=b64,
    )


def language_name(svc: ExecutionService, language: str) -> str:
    lang = svc.languages.get(language)
    version = svc.languages.versions.get(language)
    if lang is None:
        return language
    return f"{lang.name} ({version})" if version else lang.name


def submission_out(
    svc: ExecutionService, row: Any, fields: tuple[str, ...], b64: bool
) -> dict[str, Any]:
    """A submission as Judge0 shows it (``fields`` of it)."""
    return submission_json(row, fields, b64=b64, language_name=language_name(svc, row.language))


def make_router(prefix: str) -> APIRouter:
    # Judge0's own API (documented by Judge0), kept out of our OpenAPI schema.
    router = APIRouter(
        prefix=prefix,
        tags=["judge0"],
        include_in_schema=False,
        dependencies=[Depends(judge0_user)],  # every route: Judge0 with AUTHN_TOKEN set
    )

    @router.get("/about")
    async def about() -> dict[str, Any]:
        return {"version": JUDGE0_VERSION, "homepage": "", "source_code": "", "maintainer": ""}

    @router.get("/languages")
    async def languages(svc: Svc) -> list[dict[str, Any]]:
        return [
            {"id": jid, "name": language_name(svc, lid)}
            for lid, jid in sorted(LANGUAGE_IDS.items(), key=lambda kv: kv[1])
            if svc.languages.get(lid) is not None and svc.languages.available(lid)
        ]

    @router.get("/languages/{language_id}")
    async def language(language_id: int, svc: Svc) -> dict[str, Any]:
        lid = BY_ID.get(language_id)
        if lid is None or svc.languages.get(lid) is None:
            raise InvalidInput(f"language with id {language_id} doesn't exist",
                               code="unknown_language")  # fmt: skip
        return {"id": language_id, "name": language_name(svc, lid), "is_archived": False}

    @router.get("/statuses")
    async def statuses() -> list[dict[str, Any]]:
        return [{"id": i, "description": d} for i, d in STATUSES.items()]

    @router.get("/config_info")
    async def config_info(platform: PlatformDep) -> dict[str, Any]:
        s = platform.settings
        return {
            "maintenance_mode": False, "enable_wait_result": True,
            "enable_compiler_options": False, "allowed_languages_for_compile_options": [],
            "enable_command_line_arguments": False, "enable_submission_delete": False,
            "enable_callbacks": True, "callbacks_max_tries": s.judge0_callback_tries,
            "callbacks_timeout": s.judge0_callback_timeout_s, "enable_additional_files": False,
            "max_queue_size": s.exec_queue_max, "cpu_time_limit": s.exec_default_cpu_s,
            "max_cpu_time_limit": s.exec_max_cpu_s, "cpu_extra_time": 0, "max_cpu_extra_time": 0,
            "wall_time_limit": s.exec_default_wall_s, "max_wall_time_limit": s.exec_max_wall_s,
            "memory_limit": s.exec_default_memory_mb * 1024,
            "max_memory_limit": s.exec_max_memory_mb * 1024, "stack_limit": 0,
            "max_stack_limit": 0, "max_processes_and_or_threads": s.exec_default_pids,
            "max_max_processes_and_or_threads": s.exec_max_pids,
            "enable_per_process_and_thread_time_limit": False,
            "enable_per_process_and_thread_memory_limit": False,
            "allow_enable_per_process_and_thread_time_limit": False,
            "allow_enable_per_process_and_thread_memory_limit": False,
            "max_file_size": s.exec_default_output_bytes // 1024,
            "max_max_file_size": s.exec_max_output_bytes // 1024, "number_of_runs": 1,
            "max_number_of_runs": 1, "redirect_stderr_to_stdout": False,
            "max_extract_size": 0, "enable_batched_submissions": True,
            "max_submission_batch_size": s.exec_batch_max, "submission_cache_duration": 0,
            "use_docs_as_homepage": False, "allow_enable_network": False, "enable_network": False,
        }  # fmt: skip

    @router.post("/submissions", status_code=201)
    async def create(
        body: SubmissionIn,
        user: User,
        svc: Svc,
        base64_encoded: bool = False,
        wait: bool = False,
        fields: Fields = None,
    ) -> dict[str, Any]:
        [row] = await svc.submit(user, [job_request(body, base64_encoded)], watch=wait)
        if not wait:
            return {"token": str(row.uuid)}
        row = await svc.wait(row, svc.settings.exec_wait_max_s)
        return submission_out(svc, row, parse_fields(fields), base64_encoded)

    @router.post("/submissions/batch", status_code=201)
    async def create_batch(
        body: BatchIn, user: User, svc: Svc, base64_encoded: bool = False
    ) -> list[dict[str, Any]]:
        rows = await svc.submit(user, [job_request(b, base64_encoded) for b in body.submissions])
        return [{"token": str(r.uuid)} for r in rows]

    @router.get("/submissions/batch")
    async def get_batch(
        user: User,
        svc: Svc,
        tokens: Annotated[str, Query(max_length=100_000)],
        base64_encoded: bool = False,
        fields: Fields = None,
    ) -> dict[str, Any]:
        names = parse_fields(fields)
        wanted = [t.strip() for t in tokens.split(",") if t.strip()]
        if not wanted or len(wanted) > svc.settings.exec_batch_max:
            raise InvalidInput(f"give 1-{svc.settings.exec_batch_max} tokens",
                               code="invalid_tokens")  # fmt: skip
        rows = await svc.get_many(user, wanted)
        return {
            "submissions": [
                submission_out(svc, rows[t], names, base64_encoded) if t in rows else None
                for t in wanted
            ]
        }

    @router.get("/submissions/{token}")
    async def get_one(
        token: str,
        user: User,
        svc: Svc,
        base64_encoded: bool = False,
        fields: Fields = None,
    ) -> dict[str, Any]:
        names = parse_fields(fields)
        return submission_out(svc, await svc.get(user, token), names, base64_encoded)

    return router
