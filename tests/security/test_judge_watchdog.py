"""Finding 4 (judge side): a judge job that hangs must not hold its worker for good.

Fault injection (the only fake here): the runtime's ``ephemeral`` sandboxes are real, but the
sandbox's ``exec`` of a job whose stdin says ``HANG`` never returns, like an exec whose pipes
were no longer watched. With one worker, the watchdog must fail that job as ``internal_error``
after its wall limit plus ``exec_watchdog_margin_s``, and the next job must then run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from coolcoding.sandbox.base import Sandbox
from tests.conftest import LiveServer, UserClient, searchable, start_live_server

pytestmark = pytest.mark.sandbox


class HangingExec:
    """A real sandbox whose ``exec`` hangs for good when the job's stdin is ``HANG``."""

    def __init__(self, box: Sandbox) -> None:
        self._box = box

    def __getattr__(self, name: str) -> Any:
        return getattr(self._box, name)

    async def exec(self, argv: list[str], **kw: Any) -> Any:
        if kw.get("stdin") == b"HANG\n":
            await asyncio.Event().wait()
        return await self._box.exec(argv, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        "sqlite",
        searchable(tmp_path_factory.mktemp("watchdog")),
        exec_workers=1,
        exec_watchdog_margin_s=1.0,
    )
    judge = srv.platform.executions.judge
    runtime = srv.platform.runtime
    real = runtime.ephemeral

    @contextlib.asynccontextmanager
    async def ephemeral(files: Mapping[str, bytes], **kw: Any) -> AsyncIterator[Any]:
        async with real(files, **kw) as box:
            yield HangingExec(box)

    runtime.ephemeral = ephemeral
    assert judge.runtime() is runtime
    yield srv
    stop()


def wait_finished(u: UserClient, eid: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = u.client.get(f"/api/executions/{eid}").json()
        if body["status"] == "finished":
            return body
        assert time.monotonic() < deadline, f"job never finished: {body}"
        time.sleep(0.1)


def test_a_stuck_job_is_failed_and_its_worker_freed(user: UserClient) -> None:
    hung = {"language": "bash", "source": "cat\n", "stdin": "HANG\n", "limits": {"wall_s": 1}}
    after = {"language": "bash", "source": "echo hi\n"}
    r = user.client.post("/api/executions/batch", json={"jobs": [hung, after, after]})
    assert r.status_code == 202, r.text
    first, *rest = r.json()["ids"]
    body = wait_finished(user, first)
    assert body["verdict"] == "internal_error", body
    assert "watchdog" in body["message"]
    for eid in rest:  # the only worker is free again
        body = wait_finished(user, eid)
        assert (body["verdict"], body["stdout"]) == ("accepted", "hi\n"), body


def test_a_job_within_its_limits_is_not_touched(user: UserClient) -> None:
    job = {"language": "bash", "source": "sleep 1.5; echo done\n", "limits": {"wall_s": 5}}
    r = user.client.post("/api/executions?wait=true", json=job)
    assert r.status_code == 200, r.text
    assert (r.json()["verdict"], r.json()["stdout"]) == ("accepted", "done\n")
