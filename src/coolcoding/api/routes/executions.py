"""Judge jobs, runs in a session, and their server-sent event streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from coolcoding.api.deps import CurrentUser, EditorSession, PlatformDep
from coolcoding.api.responses import AUTHED, OWNED, WRITE, WRITE_OWNED, errors, merge
from coolcoding.db.models import Execution
from coolcoding.errors import Conflict, NotFound, RateLimited
from coolcoding.platform import Platform
from coolcoding.schemas.executions import (
    BatchIn,
    BatchOut,
    ExecutionIn,
    ExecutionOut,
    ExecutionPage,
    RunControlOut,
    RunIn,
    RunStartedOut,
    RunStdinIn,
)
from coolcoding.schemas.limits import MAX_OFFSET
from coolcoding.schemas.ws import RunStartedEvent
from coolcoding.services.executions import ExecutionService, JobRequest

router = APIRouter(prefix="/api", tags=["executions"])


async def get_executions(platform: PlatformDep) -> ExecutionService:
    return platform.executions


Executions = Annotated[ExecutionService, Depends(get_executions)]


def job_request(body: ExecutionIn) -> JobRequest:
    limits = body.limits.model_dump(exclude_none=True) if body.limits else None
    return JobRequest(
        language=body.language,
        source=body.source,
        files=body.files,
        entry=body.entry,
        stdin=body.stdin,
        expected_output=body.expected_output,
        limits=limits,
        testcases=[c.model_dump() for c in body.testcases] if body.testcases is not None else None,
        checker=body.checker.model_dump() if body.checker is not None else None,
        stop_on_failure=body.stop_on_first_failure,
        dependencies=body.dependencies,
    )


# 413: a source, stdin or batch beyond the limits; 429: the per-user rate of jobs.
SUBMIT = merge(WRITE, errors(RateLimited))


@router.post(
    "/executions",
    status_code=202,
    response_model=ExecutionOut,
    responses=merge(SUBMIT, {200: {"model": ExecutionOut, "description": "Finished (?wait=true)"}}),
)
async def submit(
    body: ExecutionIn,
    user: CurrentUser,
    svc: Executions,
    response: Response,
    wait: bool = False,
) -> ExecutionOut:
    """Queue a judge job; ``?wait=true`` answers 200 with the result once it is finished (202
    as without ``wait`` when it takes longer than ``exec_wait_max_s``)."""
    [row] = await svc.submit(user.user_id, [job_request(body)], watch=wait)
    if wait:
        row = await svc.wait(row, svc.settings.exec_wait_max_s)
        if row.status == "finished":
            response.status_code = 200
    return ExecutionOut.of(row)


@router.post("/executions/batch", status_code=202, response_model=BatchOut, responses=SUBMIT)
async def submit_batch(body: BatchIn, user: CurrentUser, svc: Executions) -> BatchOut:
    rows = await svc.submit(user.user_id, [job_request(j) for j in body.jobs])
    return BatchOut(ids=[str(r.uuid) for r in rows])


@router.get("/executions", response_model=ExecutionPage, responses=AUTHED)
async def list_executions(
    user: CurrentUser,
    svc: Executions,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ExecutionPage:
    rows = await svc.list_for(user.user_id, limit + 1, offset)
    more = len(rows) > limit
    return ExecutionPage(
        items=[ExecutionOut.of(r, full=False) for r in rows[:limit]],
        next_offset=offset + limit if more else None,
    )


@router.get("/executions/{execution_id}", response_model=ExecutionOut, responses=OWNED)
async def get_execution(
    execution_id: str, user: CurrentUser, svc: Executions, platform: PlatformDep
) -> ExecutionOut:
    return ExecutionOut.of(await visible_execution(platform, svc, user.user_id, execution_id))


async def visible_execution(
    platform: Platform, svc: ExecutionService, user_id: int, execution_id: str
) -> Execution:
    """The caller's execution, or a run in a session the caller is a member of (viewers
    watch runs); 404 otherwise, like a missing one."""
    try:
        return await svc.get(user_id, execution_id)
    except NotFound:
        row = await svc.get_any(execution_id)
        if row is None or row.session_id is None:
            raise
        session = await platform.sessions.load(row.session_id)
        await platform.access.role_of(user_id, str(session.uuid))
        return row


def sse(event: str, data: dict[str, Any]) -> bytes:
    if event == "ping":
        return b": ping\n\n"
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@router.get(
    "/executions/{execution_id}/events",
    response_class=StreamingResponse,
    responses=merge(
        {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}}, OWNED
    ),
)
async def execution_events(
    execution_id: str, user: CurrentUser, svc: Executions, platform: PlatformDep
) -> StreamingResponse:
    """Server-sent events: ``stdout``/``stderr`` (``{"data": text}``) as the program writes,
    then one ``result``. A finished execution replays its stored output and result."""
    row = await visible_execution(platform, svc, user.user_id, execution_id)

    async def stream() -> AsyncIterator[bytes]:
        async for event, data in svc.follow(row):
            yield sse(event, data)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/sessions/{session_uuid}/run",
    status_code=202,
    response_model=RunStartedOut,
    responses=merge(WRITE_OWNED, errors(Conflict, RateLimited)),
)
async def run_in_session(
    body: RunIn, session: EditorSession, user: CurrentUser, svc: Executions, platform: PlatformDep
) -> RunStartedOut:
    """Run the session's entry file (or ``path``) in its sandbox; follow ``events``."""
    row = await svc.run_in_session(user.user_id, session, body.path, body.stdin, body.stdin_path)
    eid = str(row.uuid)
    # The session's members follow it too (their events socket tells them).
    await platform.events.publish(
        str(session.uuid),
        RunStartedEvent(
            execution_id=eid, user_id=user.user_id, events=f"/api/executions/{eid}/events"
        ).as_dict(),
    )
    return RunStartedOut(
        execution_id=eid, id=eid, status=row.status, events=f"/api/executions/{eid}/events"
    )


@router.post(
    "/sessions/{session_uuid}/run/stdin",
    response_model=RunControlOut,
    responses=merge(WRITE_OWNED, errors(Conflict)),
)
async def run_stdin(body: RunStdinIn, session: EditorSession, svc: Executions) -> RunControlOut:
    """Input for the program the session runs now (409 ``no_active_run`` when none)."""
    eid = await svc.runner.send_stdin(session, body.data, body.eof)
    return RunControlOut(execution_id=eid)


@router.post(
    "/sessions/{session_uuid}/run/stop",
    response_model=RunControlOut,
    responses=merge(WRITE_OWNED, errors(Conflict)),
)
async def run_stop(session: EditorSession, svc: Executions) -> RunControlOut:
    """Stop the session's run: its whole process group is killed; its result says so."""
    eid = await svc.runner.stop_run(session)
    return RunControlOut(execution_id=eid)
